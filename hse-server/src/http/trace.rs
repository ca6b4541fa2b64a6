//! The span of every HTTP request, and its request id.
//!
//! Each request the router answers runs inside one `http.request` span:
//!
//! | field | value |
//! |---|---|
//! | `http.method` | one of the nine HTTP/1.1 methods, else `other` (as the metrics) |
//! | `http.route` | the matched route's template (`/v1/bookings/{id}`), else `unmatched` |
//! | `request_id` | the request id (below) |
//! | `http.status` | the answer's status, once answered |
//! | `http.latency_ms` | from the request reaching the router to its answer, once answered |
//!
//! Every event logged while the request is handled carries these fields,
//! and one event, `request answered`, ends it: at INFO, or DEBUG for the
//! health probes and `/metrics` scrapes (an orchestrator polls them).
//! No field takes the request's path or method as sent, so a client
//! cannot make a field long or invent values.
//!
//! The request id is the client's `x-request-id` when it is a sane token
//! ([`RequestId::parse`]), else a fresh UUID. It is echoed in the answer's
//! `x-request-id` header and given to handlers as the [`RequestId`]
//! request extension.

use std::fmt;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;
use uuid::Uuid;

use crate::metrics::method_label;

/// The request id header, read from requests and set on answers.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a client.
pub const MAX_REQUEST_ID: usize = 64;

/// The id of one request: the client's, when sane, or a generated UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A client's request id: 1 to [`MAX_REQUEST_ID`] characters of ASCII
    /// letters, digits, `-`, `_`, `.` and `:` (a UUID, a ULID, `abc-123`).
    /// Anything else is `None` (and the server generates one instead), so
    /// an id can neither forge a log line nor grow one.
    #[must_use]
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let sane = (1..=MAX_REQUEST_ID).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        sane.then(|| Self(value.clone()))
    }

    /// A fresh id (a random UUID).
    #[must_use]
    pub fn generate() -> Self {
        let text = Uuid::new_v4().hyphenated().to_string();
        Self(HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown")))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever accepted or generated.
        self.0.to_str().unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Routes whose answers are logged at DEBUG: polled by machines.
fn is_probe(route: &str) -> bool {
    route.starts_with("/health/") || route == "/metrics"
}

/// The middleware: runs the request in its span, logs its answer, and
/// echoes the request id.
pub async fn trace(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let probe = is_probe(route);
    let span = tracing::info_span!(
        "http.request",
        http.method = method_label(request.method()),
        http.route = route,
        request_id = %id,
        http.status = Empty,
        http.latency_ms = Empty,
    );
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("http.status", response.status().as_u16());
    span.record("http.latency_ms", started.elapsed().as_secs_f64() * 1000.0);
    span.in_scope(|| {
        if probe {
            tracing::debug!("request answered");
        } else {
            tracing::info!("request answered");
        }
    });
    response.headers_mut().insert(REQUEST_ID, id.0);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<String> {
        RequestId::parse(&HeaderValue::from_str(text).ok()?).map(|id| id.to_string())
    }

    #[test]
    fn a_sane_client_id_is_kept_as_sent() {
        let longest = "a".repeat(MAX_REQUEST_ID);
        for id in ["abc-123", "01HZX3J7K9", "req_1.2:3", &longest] {
            assert_eq!(parsed(id).as_deref(), Some(id));
        }
        let uuid = Uuid::new_v4().to_string();
        assert_eq!(parsed(&uuid), Some(uuid));
    }

    #[test]
    fn an_id_that_could_forge_or_grow_a_log_line_is_refused() {
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        for id in ["", "a b", "a\"b", "a\tb", "x{y}", "a/b", "é", &long] {
            assert_eq!(parsed(id), None, "{id:?}");
        }
        let raw = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert_eq!(RequestId::parse(&raw), None);
    }

    #[test]
    fn a_generated_id_is_a_fresh_uuid_the_parser_accepts() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert!(a.as_str().parse::<Uuid>().is_ok(), "{a}");
        assert_eq!(RequestId::parse(&a.0), Some(a));
    }
}
