//! Server configuration, read from `HSE_*` environment variables.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HSE_HTTP_ADDR` | `127.0.0.1:8080` | HTTP listen address (`:0` picks a free port) |
//! | `HSE_DATABASE_URL` | unset | PostgreSQL URL; unset runs the embedded in-memory default |
//! | `HSE_REDIS_URL` | unset | Redis URL; unset uses in-process queues and state |
//! | `HSE_LOG_FORMAT` | `text` | `text` or `json` |
//! | `HSE_SHUTDOWN_TIMEOUT_S` | `10` | seconds to drain on SIGTERM before exiting |
//! | `HSE_JWT_SIGNING_KEY` | random per start | Ed25519 seed, 64 hex characters; share it between nodes |
//! | `HSE_ROOT_EMAIL` | `root@hse.local` | the root account `bootstrap-root` creates |
//! | `HSE_ROOT_PASSWORD` | unset | its password; unset generates one and prints it once |
//! | `HSE_PUBLIC_URL` | `http://<HSE_HTTP_ADDR>` | the token issuer (`iss`) |
//!
//! A bad value stops start-up with a message naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

/// A configuration error, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret setting; `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// PostgreSQL URL (may hold a password).
    pub database_url: Option<Secret>,
    /// Redis URL (may hold a password).
    pub redis_url: Option<Secret>,
    /// Log format.
    pub log_format: LogFormat,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
    /// Ed25519 seed for access tokens; `None` generates one per start.
    pub jwt_seed: Option<SecretSeed>,
    /// Token issuer.
    pub public_url: String,
    /// The root account to bootstrap.
    pub root_email: String,
    /// Its password, if given.
    pub root_password: Option<Secret>,
}

/// A 32-byte signing seed; `Debug` never prints it.
#[derive(Clone)]
pub struct SecretSeed(pub [u8; 32]);

impl std::fmt::Debug for SecretSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (tests pass a map).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let http_addr: SocketAddr = parse(&get, "HSE_HTTP_ADDR", "127.0.0.1:8080")?;
        Ok(Self {
            http_addr,
            jwt_seed: get("HSE_JWT_SIGNING_KEY").map(|v| seed(&v)).transpose()?,
            root_email: get("HSE_ROOT_EMAIL")
                .unwrap_or_else(|| crate::bootstrap::DEFAULT_ROOT_EMAIL.to_owned()),
            root_password: get("HSE_ROOT_PASSWORD").map(Secret),
            public_url: get("HSE_PUBLIC_URL").unwrap_or_else(|| format!("http://{http_addr}")),
            database_url: url(&get, "HSE_DATABASE_URL", &["postgres://", "postgresql://"])?,
            redis_url: url(&get, "HSE_REDIS_URL", &["redis://", "rediss://"])?,
            log_format: match get("HSE_LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(bad(
                        "HSE_LOG_FORMAT",
                        format!("`{other}` is not `text` or `json`"),
                    ));
                }
            },
            shutdown_timeout: Duration::from_secs(parse(&get, "HSE_SHUTDOWN_TIMEOUT_S", "10")?),
        })
    }
}

fn seed(hex_text: &str) -> Result<SecretSeed, ConfigError> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|_| bad("HSE_JWT_SIGNING_KEY", "must be hex".into()))?;
    let seed = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        bad(
            "HSE_JWT_SIGNING_KEY",
            "must be 32 bytes (64 hex characters)".into(),
        )
    })?;
    Ok(SecretSeed(seed))
}

fn bad(variable: &'static str, reason: String) -> ConfigError {
    ConfigError { variable, reason }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let raw = get(variable).unwrap_or_else(|| default.to_owned());
    raw.trim()
        .parse()
        .map_err(|e| bad(variable, format!("`{raw}`: {e}")))
}

fn url(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    schemes: &[&str],
) -> Result<Option<Secret>, ConfigError> {
    match get(variable) {
        None => Ok(None),
        Some(v) if schemes.iter().any(|s| v.starts_with(s)) => Ok(Some(Secret(v))),
        Some(_) => Err(bad(
            variable,
            format!("must start with {}", schemes.join(" or ")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_run_the_embedded_server_on_localhost() {
        let c = config(&[]).unwrap();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8080");
        assert!(c.database_url.is_none() && c.redis_url.is_none());
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("HSE_HTTP_ADDR", "localhost"),
            ("HSE_DATABASE_URL", "mysql://x"),
            ("HSE_REDIS_URL", "http://x"),
            ("HSE_LOG_FORMAT", "xml"),
            ("HSE_SHUTDOWN_TIMEOUT_S", "-1"),
            ("HSE_JWT_SIGNING_KEY", "abcd"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
        }
    }

    #[test]
    fn urls_are_never_printed() {
        let c = config(&[("HSE_DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
