//! Server configuration, read from `HSE_*` environment variables and,
//! beneath them, an optional TOML file ([`file`](mod@file): `HSE_CONFIG`, key
//! `http_addr` for `HSE_HTTP_ADDR`; the environment wins).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HSE_CONFIG` | unset | path of a TOML configuration file (also `--config`); its keys are these variables without `HSE_`, in lower case |
//! | `HSE_HTTP_ADDR` | `127.0.0.1:8080` | HTTP listen address, `host:port` (a host name resolves, IPv4 first; `:0` picks a free port) |
//! | `HSE_DATABASE_URL` | unset | PostgreSQL URL of the application role (owns no table, no SUPERUSER, no BYPASSRLS; checked at start); unset runs the embedded in-memory default |
//! | `HSE_DATABASE_MIGRATION_URL` | unset | PostgreSQL URL of the schema owner; set, migrations run with it at start; unset, none run (the start-up check then needs a migrated database) |
//! | `HSE_REDIS_URL` | unset | Redis URL; unset uses in-process queues and state |
//! | `HSE_REDIS_DURABILITY` | `warn` | `warn` or `require`: what start-up does when Redis can lose acknowledged events ([`crate::redis_durability`]) |
//! | `HSE_REDIS_PREFIX` | `hse:` | prefix of every Redis key this deployment writes (device streams, state, dead letters, rate limits, sign-in failures) |
//! | `HSE_NODE_NAME` | `$HOSTNAME`, else `hse-server` | this node's batch-writer consumer name; keep it stable across restarts |
//! | `HSE_GRPC_ADDR` | `127.0.0.1:50051` | gRPC listen address (`host:port`, as `HSE_HTTP_ADDR`) |
//! | `HSE_GRPC_TOKEN` | unset | bearer token gRPC clients must send (≥32 chars); required off loopback |
//! | `HSE_DEVICE_TCP_ADDR` | `127.0.0.1:7700` | device TCP listen address (`host:port`, as `HSE_HTTP_ADDR`) |
//! | `HSE_INGEST_MAX_LAG_MS` | `5000` | devices get `nack overloaded` (with `retry_after_ms`) while the oldest event no writer has taken is older than this (100 to 3600000) |
//! | `HSE_INGEST_ENQUEUE_TIMEOUT_MS` | `5000` | how long a frame waits for Redis to answer its enqueue; past it the device gets `nack outcome_unknown` (100 to 60000) |
//! | `HSE_INGEST_MEMORY_QUEUE_MB` | `256` | memory bound of the in-process queue (without Redis), MiB (1 to 65536) |
//! | `HSE_ROLES` | `api,grpc,ingest,workers` | what this process runs (also `--roles`) |
//! | `HSE_CORS_ORIGINS` | unset | comma-separated browser origins allowed to call the API |
//! | `HSE_LOG_FORMAT` | `text` | `text` or `json` |
//! | `HSE_SHUTDOWN_TIMEOUT_S` | `10` | seconds to drain on SIGTERM before exiting |
//! | `HSE_PRINCIPAL_CACHE_MS` | `1000` | how long a user's role and grants read for one request serve the next (0 = read every request); tenancy writes through this node retire it at once |
//! | `HSE_PLACEMENT_CACHE_MS` | `1000` | how long where a device, area, user… lives in the tenant tree serves later authorization checks (0 = read every check); tenancy writes through this node retire it at once |
//! | `HSE_STAY_INTERVAL_MS` | `30000` | milliseconds between passes of the automatic check-in/check-out worker (100 to 3600000) |
//! | `HSE_JWT_SIGNING_KEY` | random per start | Ed25519 seed, 64 hex characters; share it between nodes |
//! | `HSE_ROOT_EMAIL` | `root@hse.local` | the root account `bootstrap-root` creates |
//! | `HSE_ROOT_PASSWORD` | unset | its password; unset generates one and prints it once |
//! | `HSE_PUBLIC_URL` | `urn:hse` with `HSE_JWT_SIGNING_KEY`, else `http://<HSE_HTTP_ADDR>` | the token issuer (`iss`); nodes sharing a signing key share it, so a sibling accepts a node's tokens |
//! | `HSE_WEBHOOK_URL` | unset | `http://host[:port][/path]` receiving booking notifications, HMAC-signed |
//! | `HSE_WEBHOOK_SECRET` | unset | the webhook's signing secret, at least 16 bytes (required with the URL) |
//! | `HSE_SMTP_ADDR` | unset | `host:port` of a local SMTP relay for guest emails |
//! | `HSE_SMTP_FROM` | unset | the sender address of those emails (required with the relay) |
//! | `HSE_HEADER_TIMEOUT_MS` | `10000` | an HTTP request head must arrive within this of the connection opening or of its previous answer, so it also closes idle keep-alive connections |
//! | `HSE_IDLE_TIMEOUT_MS` | `60000` | an HTTP or gRPC connection moving no byte either way for this long is closed (a stalled body, an unread answer, a silent gRPC client; gRPC pings live clients every half of it); an upgraded WebSocket is bounded by its device session instead |
//! | `HSE_MAX_CONNECTIONS` | `10000` | connections the HTTP listener (WebSockets included) and, separately, the gRPC listener hold open; the excess is closed as soon as it is accepted |
//! | `HSE_MAX_CONNECTIONS_PER_IP` | `256` | of those, from one IPv4 address or IPv6 `/64`; behind a reverse proxy every client has the proxy's address, so raise it to `HSE_MAX_CONNECTIONS` |
//! | `HSE_DEVICE_HELLO_TIMEOUT_MS` | `10000` | a device connection (TCP or WebSocket) must complete its `hello` frame within this, or it is closed |
//! | `HSE_TLS_CERT` | unset | PEM certificate chain (leaf first); set with `HSE_TLS_KEY`, the HTTP, gRPC and device TCP listeners all speak TLS only ([`crate::tls`]); re-read on SIGHUP and when the file changes |
//! | `HSE_TLS_KEY` | unset | PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1; may be the same file as the chain) |
//!
//! With neither notification channel configured, booking notifications are
//! kept in the outbox (pending) until one is.
//!
//! A bad value stops start-up with a message naming the variable (or the
//! file and key it came from: `hse.toml: http_addr: ...`).

mod addr;
pub mod file;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use hse_booking::smtp::SmtpChannel;
use hse_booking::webhook::WebhookChannel;

/// A configuration error, naming the variable at fault (or the file and
/// key its value came from).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
    /// The configuration file the bad value came from; `None`: the
    /// environment.
    pub file: Option<String>,
}

impl ConfigError {
    /// `VARIABLE: reason`, or `file: key: reason` for a value from a file.
    fn describe(&self) -> String {
        match &self.file {
            None => format!("{}: {}", self.variable, self.reason),
            Some(file) if self.variable == file::CONFIG_VARIABLE => {
                format!("{file}: {}", self.reason)
            }
            Some(file) => format!("{file}: {}: {}", file::key_of(self.variable), self.reason),
        }
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The token issuer of nodes that share `HSE_JWT_SIGNING_KEY` and set no
/// `HSE_PUBLIC_URL`: the same on every node of the cluster.
pub const CLUSTER_ISSUER: &str = "urn:hse";

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
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Bearer token gRPC clients must present; required off loopback.
    pub grpc_token: Option<Secret>,
    /// Device TCP listen address.
    pub device_tcp_addr: SocketAddr,
    /// What this process runs.
    pub roles: Roles,
    /// Browser origins allowed by CORS (none by default).
    pub cors_origins: Vec<String>,
    /// PostgreSQL URL of the application role (may hold a password).
    pub database_url: Option<Secret>,
    /// PostgreSQL URL of the schema owner, to migrate with at start.
    pub database_migration_url: Option<Secret>,
    /// Redis URL (may hold a password).
    pub redis_url: Option<Secret>,
    /// What start-up does when Redis can lose acknowledged events.
    pub redis_durability: crate::redis_durability::DurabilityMode,
    /// Prefix of the device pipeline's Redis keys.
    pub redis_prefix: String,
    /// This node's name: its batch writer's consumer name in the Redis
    /// group (stable across restarts, so it resumes its own entries).
    pub node_name: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
    /// How long a principal read for one request serves the next ones.
    pub principal_cache: Duration,
    /// How long a resource's place in the tenant tree serves later checks.
    pub placement_cache: Duration,
    /// Pause between passes of the check-in/check-out worker.
    pub stay_interval: Duration,
    /// Ed25519 seed for access tokens; `None` generates one per start.
    pub jwt_seed: Option<SecretSeed>,
    /// Token issuer.
    pub public_url: String,
    /// The root account to bootstrap.
    pub root_email: String,
    /// Its password, if given.
    pub root_password: Option<Secret>,
    /// Where booking notifications are POSTed, if anywhere.
    pub webhook: Option<WebhookChannel>,
    /// The relay guest emails go through, if any.
    pub smtp: Option<SmtpChannel>,
    /// Bounds of the HTTP and gRPC listeners' connections.
    pub connections: crate::connections::Limits,
    /// Time a device connection has for its `hello` frame.
    pub device_hello_timeout: Duration,
    /// Device ingest back-pressure and timeouts.
    pub ingest: IngestSettings,
    /// The certificate of all three listeners; `None`: plain text.
    pub tls: Option<crate::tls::TlsSettings>,
}

/// `HSE_INGEST_*`: when devices are asked to slow down, and how long an
/// enqueue may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestSettings {
    /// `overloaded` while storage lags more than this.
    pub max_lag: Duration,
    /// Longest wait for Redis to answer an enqueue.
    pub enqueue_timeout: Duration,
    /// The in-process queue's memory bound, bytes.
    pub memory_queue_bytes: usize,
}

impl IngestSettings {
    fn from_env(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let max_lag = bounded(get, "HSE_INGEST_MAX_LAG_MS", "5000", 100..=3_600_000)?;
        let timeout = bounded(get, "HSE_INGEST_ENQUEUE_TIMEOUT_MS", "5000", 100..=60_000)?;
        let mib = bounded(get, "HSE_INGEST_MEMORY_QUEUE_MB", "256", 1..=65_536)?;
        Ok(Self {
            max_lag: Duration::from_millis(max_lag),
            enqueue_timeout: Duration::from_millis(timeout),
            memory_queue_bytes: usize::try_from(mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1024 * 1024),
        })
    }
}

/// A whole number read from `variable` that must lie within `range`.
fn bounded(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let n: u64 = parse(get, variable, default)?;
    if !range.contains(&n) {
        return Err(bad(
            variable,
            format!("`{n}` is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(n)
}

/// Which parts of the server this process runs, so the API can be
/// redeployed while ingest keeps running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "four independent switches, named as on the command line"
)]
pub struct Roles {
    /// The HTTP API of `docs/API.md`.
    pub api: bool,
    /// The gRPC service.
    pub grpc: bool,
    /// Device listeners (TCP and WebSocket) and the batch writer.
    pub ingest: bool,
    /// Background work: check-in/out, lock programming, notifications,
    /// dead-letter retries, partition maintenance.
    pub workers: bool,
}

impl Roles {
    /// The default: everything.
    pub const ALL: &'static str = "api,grpc,ingest,workers";

    /// Parses `api,grpc,ingest,workers` (any non-empty subset).
    ///
    /// # Errors
    /// The reason, for an unknown or empty list.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut roles = Self {
            api: false,
            grpc: false,
            ingest: false,
            workers: false,
        };
        for role in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "api" => roles.api = true,
                "grpc" => roles.grpc = true,
                "ingest" => roles.ingest = true,
                "workers" => roles.workers = true,
                other => return Err(format!("unknown role `{other}`; use {}", Self::ALL)),
            }
        }
        if roles
            == (Self {
                api: false,
                grpc: false,
                ingest: false,
                workers: false,
            })
        {
            return Err(format!("no role given; use some of {}", Self::ALL));
        }
        Ok(roles)
    }
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
    /// Reads the configuration from the process environment, over the
    /// file `HSE_CONFIG` names, if any.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(None)
    }

    /// Reads the configuration through `lookup` (tests pass a map).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let http_addr = addr::listen(&get, "HSE_HTTP_ADDR", "127.0.0.1:8080")?;
        Ok(Self {
            http_addr,
            grpc_addr: addr::listen(&get, "HSE_GRPC_ADDR", "127.0.0.1:50051")?,
            grpc_token: grpc_token(&get)?,
            device_tcp_addr: addr::listen(&get, "HSE_DEVICE_TCP_ADDR", "127.0.0.1:7700")?,
            roles: Roles::parse(&get("HSE_ROLES").unwrap_or_else(|| Roles::ALL.into()))
                .map_err(|reason| bad("HSE_ROLES", reason))?,
            cors_origins: get("HSE_CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            jwt_seed: get("HSE_JWT_SIGNING_KEY").map(|v| seed(&v)).transpose()?,
            root_email: get("HSE_ROOT_EMAIL")
                .unwrap_or_else(|| crate::bootstrap::DEFAULT_ROOT_EMAIL.to_owned()),
            root_password: get("HSE_ROOT_PASSWORD").map(Secret),
            public_url: get("HSE_PUBLIC_URL").unwrap_or_else(|| {
                // A shared signing key makes a cluster: its nodes must agree
                // on the issuer too, and their own addresses differ.
                if get("HSE_JWT_SIGNING_KEY").is_some() {
                    CLUSTER_ISSUER.to_owned()
                } else {
                    let named = get("HSE_HTTP_ADDR").map(|a| a.trim().to_owned());
                    format!("http://{}", named.unwrap_or_else(|| http_addr.to_string()))
                }
            }),
            database_url: url(&get, "HSE_DATABASE_URL", &["postgres://", "postgresql://"])?,
            database_migration_url: url(
                &get,
                "HSE_DATABASE_MIGRATION_URL",
                &["postgres://", "postgresql://"],
            )?,
            redis_url: url(&get, "HSE_REDIS_URL", &["redis://", "rediss://"])?,
            redis_durability: get("HSE_REDIS_DURABILITY")
                .map(|v| crate::redis_durability::DurabilityMode::parse(&v))
                .transpose()
                .map_err(|reason| bad("HSE_REDIS_DURABILITY", reason))?
                .unwrap_or_default(),
            redis_prefix: get("HSE_REDIS_PREFIX")
                .unwrap_or_else(|| crate::backends::DEFAULT_REDIS_PREFIX.to_owned()),
            node_name: get("HSE_NODE_NAME")
                .or_else(|| get("HOSTNAME"))
                .unwrap_or_else(|| "hse-server".to_owned()),
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
            principal_cache: Duration::from_millis(parse(&get, "HSE_PRINCIPAL_CACHE_MS", "1000")?),
            placement_cache: Duration::from_millis(parse(&get, "HSE_PLACEMENT_CACHE_MS", "1000")?),
            stay_interval: stay_interval(&get)?,
            webhook: webhook(&get)?,
            smtp: smtp(&get)?,
            connections: connection_limits(&get)?,
            device_hello_timeout: Duration::from_millis(positive(
                &get,
                "HSE_DEVICE_HELLO_TIMEOUT_MS",
                "10000",
            )?),
            ingest: IngestSettings::from_env(&get)?,
            tls: tls::tls(&get)?,
        })
    }
}

/// `HSE_WEBHOOK_URL` with `HSE_WEBHOOK_SECRET`.
fn webhook(get: &impl Fn(&str) -> Option<String>) -> Result<Option<WebhookChannel>, ConfigError> {
    let Some(url) = get("HSE_WEBHOOK_URL") else {
        return Ok(None);
    };
    let secret = get("HSE_WEBHOOK_SECRET").ok_or_else(|| {
        bad(
            "HSE_WEBHOOK_SECRET",
            "is required with HSE_WEBHOOK_URL".into(),
        )
    })?;
    WebhookChannel::new(url.trim(), secret.as_bytes())
        .map(Some)
        .map_err(|e| match e {
            hse_booking::BookingError::Invalid {
                field: "webhook_secret",
                reason,
            } => bad("HSE_WEBHOOK_SECRET", reason),
            other => bad("HSE_WEBHOOK_URL", other.to_string()),
        })
}

/// `HSE_SMTP_ADDR` (`host:port`) with `HSE_SMTP_FROM`.
fn smtp(get: &impl Fn(&str) -> Option<String>) -> Result<Option<SmtpChannel>, ConfigError> {
    let Some(addr) = get("HSE_SMTP_ADDR") else {
        return Ok(None);
    };
    let (host, port) = addr
        .trim()
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| bad("HSE_SMTP_ADDR", format!("`{addr}` is not host:port")))?;
    let from = get("HSE_SMTP_FROM")
        .ok_or_else(|| bad("HSE_SMTP_FROM", "is required with HSE_SMTP_ADDR".into()))?;
    let from =
        hse_core::value::Email::parse(&from).map_err(|e| bad("HSE_SMTP_FROM", e.to_string()))?;
    Ok(Some(SmtpChannel::new(host, port, from)))
}

/// `HSE_HEADER_TIMEOUT_MS`, `HSE_IDLE_TIMEOUT_MS`, `HSE_MAX_CONNECTIONS`
/// and `HSE_MAX_CONNECTIONS_PER_IP`, each at least 1.
fn connection_limits(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<crate::connections::Limits, ConfigError> {
    let count = |variable, default| {
        positive(get, variable, default)
            .and_then(|n| usize::try_from(n).map_err(|e| bad(variable, e.to_string())))
    };
    Ok(crate::connections::Limits {
        header_timeout: Duration::from_millis(positive(get, "HSE_HEADER_TIMEOUT_MS", "10000")?),
        idle_timeout: Duration::from_millis(positive(get, "HSE_IDLE_TIMEOUT_MS", "60000")?),
        max_connections: count("HSE_MAX_CONNECTIONS", "10000")?,
        max_connections_per_ip: count("HSE_MAX_CONNECTIONS_PER_IP", "256")?,
    })
}

/// A whole number of at least 1.
fn positive(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<u64, ConfigError> {
    match parse(get, variable, default)? {
        0 => Err(bad(variable, "must be at least 1".into())),
        n => Ok(n),
    }
}

/// `HSE_STAY_INTERVAL_MS`: whole milliseconds within [`STAY_INTERVAL_MS`].
fn stay_interval(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    let ms: u64 = parse(get, "HSE_STAY_INTERVAL_MS", "30000")?;
    if !STAY_INTERVAL_MS.contains(&ms) {
        return Err(bad(
            "HSE_STAY_INTERVAL_MS",
            format!(
                "`{ms}` is outside {}..={} milliseconds",
                STAY_INTERVAL_MS.start(),
                STAY_INTERVAL_MS.end()
            ),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// The accepted check-in/check-out pass intervals: from 100 ms (tests,
/// demos) to an hour.
const STAY_INTERVAL_MS: std::ops::RangeInclusive<u64> = 100..=3_600_000;

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

/// `HSE_GRPC_TOKEN`: at least 32 characters; without one, gRPC may only
/// listen on loopback (the service is for trusted internal callers).
fn grpc_token(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Secret>, ConfigError> {
    let addr = addr::listen(get, "HSE_GRPC_ADDR", "127.0.0.1:50051")?;
    match get("HSE_GRPC_TOKEN") {
        Some(token) if token.trim().len() >= 32 => Ok(Some(Secret(token.trim().to_owned()))),
        Some(_) => Err(bad(
            "HSE_GRPC_TOKEN",
            "must be at least 32 characters".into(),
        )),
        None if addr.ip().is_loopback() => Ok(None),
        None => Err(bad(
            "HSE_GRPC_TOKEN",
            "is required when HSE_GRPC_ADDR is not a loopback address".into(),
        )),
    }
}

fn bad(variable: &'static str, reason: String) -> ConfigError {
    ConfigError {
        variable,
        reason,
        file: None,
    }
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
mod tests;
