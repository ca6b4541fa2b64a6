//! Listen addresses: `host:port`, where the host is an IP address or a
//! name resolved once at start-up (`localhost:8080`, `api.internal:8080`).
//! A name with several addresses listens on the first IPv4 one (else the
//! first), so `localhost` means 127.0.0.1 as the defaults do.

use std::net::{SocketAddr, ToSocketAddrs};

use super::{ConfigError, bad};

/// The listen address in `variable`, or `default`.
///
/// # Errors
/// [`ConfigError`] naming `variable` when the value is not `host:port`,
/// the port is not a number up to 65535, or the name does not resolve.
pub(super) fn listen(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let raw = get(variable).unwrap_or_else(|| default.to_owned());
    resolve(raw.trim()).map_err(|reason| bad(variable, format!("`{raw}`: {reason}")))
}

/// Resolves `text` (`host:port`) to the address to listen on.
fn resolve(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("is not host:port (e.g. 127.0.0.1:8080 or localhost:8080)".into());
    };
    if host.is_empty() {
        return Err("has no host (e.g. 0.0.0.0:8080 for every interface)".into());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port (0 to 65535)"))?;
    let addresses: Vec<SocketAddr> = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|e| format!("`{host}` does not resolve ({e})"))?
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| format!("`{host}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_host_names_resolve() {
        assert_eq!(resolve("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(resolve("[::1]:7700").unwrap().to_string(), "[::1]:7700");
        let local = resolve("localhost:8080").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8080, "{local}");
    }

    #[test]
    fn bad_addresses_say_why() {
        for (text, needle) in [
            ("localhost", "is not host:port"),
            (":8080", "has no host"),
            ("localhost:http", "is not a port"),
            ("localhost:65536", "is not a port"),
            ("no-such-host.invalid:8080", "does not resolve"),
        ] {
            let reason = resolve(text).unwrap_err();
            assert!(reason.contains(needle), "{text}: {reason}");
        }
    }
}
