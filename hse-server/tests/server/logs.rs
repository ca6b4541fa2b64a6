//! The real binary's JSON logs (`HSE_LOG_FORMAT=json`) carry the spans'
//! fields: an HTTP request's id, route template, method and status; a
//! device session's device id and transport. The request id is the
//! client's `x-request-id` when sane, else generated, and always echoed.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::binary::{self, ROOT, ROOT_PASSWORD, Server};
use crate::line_device::{LineDevice, register_locks};
use crate::raw_http::{Answer, Call, send};

/// `GET path` with these headers.
async fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(Call {
        method: Method::GET,
        url: format!("{}{path}", server.url()),
        headers,
        json: None,
        from: None,
    })
    .await
}

/// The first JSON log line (parsed) that `wanted` accepts, waiting up to
/// 5 s for the server to write it.
async fn log_line(server: &Server, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = server
            .log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| wanted(l));
        if let Some(line) = found {
            return line;
        }
        assert!(Instant::now() < deadline, "no such log line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `request answered` line of request `id`.
async fn answered(server: &Server, id: &str) -> Value {
    log_line(server, |l| {
        l["fields"]["message"] == "request answered" && l["span"]["request_id"] == id
    })
    .await
}

#[tokio::test]
async fn a_request_is_logged_with_its_id_route_template_and_status() {
    let server = binary::start([("HSE_ROOT_PASSWORD", ROOT_PASSWORD)]);
    let booking = Uuid::new_v4().to_string();
    let path = format!("/v1/bookings/{booking}");
    let answer = get(&server, &path, &[("x-request-id", "abc-123")]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.header("x-request-id"), Some("abc-123"));
    let line = answered(&server, "abc-123").await;
    let span = &line["span"];
    assert_eq!(span["name"], "http.request", "{line}");
    assert_eq!(span["http.route"], "/v1/bookings/{id}", "{line}");
    assert_eq!(span["http.method"], "GET", "{line}");
    assert_eq!(span["http.status"], 401, "{line}");
    assert!(span["http.latency_ms"].as_f64().is_some(), "{line}");
    assert!(!line.to_string().contains(&booking), "the raw path: {line}");
    // The list of enclosing spans starts with it, the outermost.
    assert_eq!(line["spans"][0]["request_id"], "abc-123", "{line}");
}

#[tokio::test]
async fn a_request_without_a_sane_id_gets_a_generated_one() {
    let server = binary::start([("HSE_ROOT_PASSWORD", ROOT_PASSWORD)]);
    let none = get(&server, "/v1/me", &[]).await;
    let bad = get(
        &server,
        "/no/such/route",
        &[("x-request-id", "a forged\" id")],
    )
    .await;
    let long = "a".repeat(65);
    let too_long = get(&server, "/v1/me", &[("x-request-id", &long)]).await;
    let mut ids = Vec::new();
    for answer in [&none, &bad, &too_long] {
        let id = answer.header("x-request-id").expect("an id is echoed");
        assert!(id.parse::<Uuid>().is_ok(), "not generated: {id}");
        ids.push(id.to_owned());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "ids are fresh: {ids:?}");
    let line = answered(&server, &ids[0]).await;
    assert_eq!(line["span"]["http.route"], "/v1/me", "{line}");
    let line = answered(&server, &ids[1]).await;
    assert_eq!(line["span"]["http.route"], "unmatched", "{line}");
    assert_eq!(line["span"]["http.status"], 404, "{line}");
}

#[tokio::test]
async fn a_device_sessions_events_carry_its_device_id_and_transport() {
    let server = binary::start([("HSE_ROOT_PASSWORD", ROOT_PASSWORD)]);
    let root = server.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let (lock, secret) = register_locks(&root, 1).await.unwrap().remove(0);
    let tcp = server.device_tcp.expect("the ingest role listens");
    let _device = LineDevice::connect(tcp, &lock, &secret).await.unwrap();
    let line = log_line(&server, |l| {
        l["fields"]["message"] == "device connected" && l["span"]["device.id"] == lock.as_str()
    })
    .await;
    assert_eq!(line["span"]["name"], "device.session", "{line}");
    assert_eq!(line["span"]["transport"], "tcp", "{line}");
}
