//! A webhook [`NotificationChannel`]: an HTTP/1.1 POST of the notification
//! as JSON, signed with HMAC-SHA256.
//!
//! Headers: `X-HSE-Timestamp` (Unix seconds) and `X-HSE-Signature:
//! sha256=<hex>` over `"{timestamp}.{body}"`; a receiver recomputes it with
//! the shared secret and rejects stale timestamps. Plain `http://` only —
//! put a TLS-terminating proxy in front for remote endpoints. Any 2xx is
//! delivered; anything else is retried by the dispatcher.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::dispatcher::NotificationChannel;
use crate::error::BookingError;
use crate::notification::Notification;

/// Where and how to POST.
#[derive(Clone)]
pub struct WebhookChannel {
    authority: String,
    host: String,
    port: u16,
    path: String,
    secret: Vec<u8>,
    timeout: Duration,
}

impl fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebhookChannel {
    /// A channel posting to `url` (`http://host[:port][/path]`) signed with
    /// `secret`.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `webhook_url` for anything else, or
    /// `webhook_secret` when the secret is shorter than 16 bytes.
    pub fn new(url: &str, secret: &[u8]) -> Result<Self, BookingError> {
        let bad = || BookingError::invalid("webhook_url", "must be http://host[:port][/path]");
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        let (host, port) = split_authority(authority).ok_or_else(bad)?;
        let clean =
            |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if !clean(host) || !clean(&path) {
            return Err(bad());
        }
        if secret.len() < 16 {
            return Err(BookingError::invalid(
                "webhook_secret",
                "must be at least 16 bytes",
            ));
        }
        Ok(Self {
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            path,
            secret: secret.to_vec(),
            timeout: Duration::from_secs(10),
        })
    }

    /// The signature header value of `body` at `timestamp`.
    #[must_use]
    pub fn signature(&self, timestamp: i64, body: &[u8]) -> String {
        sign(&self.secret, timestamp, body)
    }

    async fn post(&self, body: &[u8], timestamp: i64) -> Result<(), String> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-HSE-Timestamp: {timestamp}\r\nX-HSE-Signature: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.authority,
            body.len(),
            self.signature(timestamp, body)
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        stream
            .write_all(body)
            .await
            .map_err(|e| format!("write: {e}"))?;
        // The status line is all we need; a kept-alive connection is fine.
        let mut status_line = Vec::new();
        BufReader::new(stream.take(8 * 1024))
            .read_until(b'\n', &mut status_line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let status = parse_status(&status_line).ok_or("malformed HTTP response")?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("endpoint answered {status}"))
        }
    }
}

/// HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`, as `sha256=<hex>`.
#[must_use]
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; the error arm cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Host and port of `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_authority(authority: &str) -> Option<(&str, u16)> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if rest.is_empty() => 80,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((authority, 80)),
    }
}

fn parse_status(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

/// The JSON body of a notification.
#[must_use]
pub fn payload(n: &Notification) -> serde_json::Value {
    serde_json::json!({
        "id": n.id,
        "type": n.kind.as_str(),
        "booking_id": n.booking_id,
        "guest_id": n.guest_id,
        "organization_id": n.tenancy.organization_id,
        "subject": n.subject,
        "message": n.message,
        "created_at": n.created_at,
    })
}

#[async_trait]
impl NotificationChannel for WebhookChannel {
    async fn send(&self, n: &Notification) -> Result<(), String> {
        let body = serde_json::to_vec(&payload(n)).map_err(|e| e.to_string())?;
        let timestamp = chrono::Utc::now().timestamp();
        tokio::time::timeout(self.timeout, self.post(&body, timestamp))
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently with Python's hmac module.
        assert_eq!(
            sign(b"0123456789abcdef", 1_700_000_000, br#"{"a":1}"#),
            "sha256=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8c3a23"
        );
    }

    #[test]
    fn urls_are_parsed_and_nonsense_refused() {
        let secret = [7u8; 16];
        let w = WebhookChannel::new("http://hooks.example:8080/a/b", &secret).unwrap();
        assert_eq!(
            (w.host.as_str(), w.port, w.path.as_str()),
            ("hooks.example", 8080, "/a/b")
        );
        let v6 = WebhookChannel::new("http://[::1]:9000", &secret).unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.path.as_str()),
            ("::1", 9000, "/")
        );
        for bad in [
            "https://x.example/",
            "http://x.example:port/",
            "http:// x/",
            "http://[::1",
        ] {
            assert!(WebhookChannel::new(bad, &secret).is_err(), "{bad}");
        }
        assert!(WebhookChannel::new("http://x.example/", b"short").is_err());
        assert!(!format!("{w:?}").contains("secret"));
    }

    #[test]
    fn status_lines_are_read() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n\r\n"), Some(204));
        assert_eq!(parse_status(b"SSH-2.0\r\n"), None);
    }
}
