//! The real binary under hostile connections: half-open request heads,
//! idle keep-alives, one address flooding the HTTP, WebSocket and gRPC
//! listeners, silent devices, and invented methods aimed at `/metrics`.
//! Every limit is set short through its `HSE_*` variable; a client from
//! another address binds another loopback address (`127.0.0.2`, ...).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::binary::{self, ROOT, ROOT_PASSWORD};
use crate::line_device::register_locks;

/// Longer than any limit a test sets, so a connection still open after it
/// was not closed by that limit.
const WITHIN: Duration = Duration::from_secs(4);

/// A connection to `to` from the loopback address `source`.
pub(crate) async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(format!("{source}:0").parse().expect("an address"))
        .expect("loopback binds any 127.x address");
    socket.connect(to).await.expect("the kernel accepts")
}

/// Sends `GET path` on a kept-alive connection and reads the answer: its
/// status, or `None` when the server closed the connection instead.
pub(crate) async fn get(stream: &mut TcpStream, path: &str) -> Option<u16> {
    request(stream, "GET", path).await
}

async fn request(stream: &mut TcpStream, method: &str, path: &str) -> Option<u16> {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: hse\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    answer(stream).await.map(|(status, _)| status)
}

/// Reads one answer (status and body; bodies have a `Content-Length`).
async fn answer(stream: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (end, length) = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
        let n = tokio::time::timeout(WITHIN, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    while buf.len() < end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = String::from_utf8_lossy(&buf[..end])
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, buf[end..end + length].to_vec()))
}

/// Does the server close `stream` within `limit`? (What it sends first,
/// such as a `408`, is read and dropped.)
pub(crate) async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Was `stream` refused: closed by the server before it sent a byte?
async fn refused(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(WITHIN, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_request_head_sent_byte_by_byte_is_cut_at_the_header_timeout() {
    let server = binary::start([
        ("HSE_HEADER_TIMEOUT_MS", "300"),
        ("HSE_IDLE_TIMEOUT_MS", "60000"),
    ]);
    let mut stream = TcpStream::connect(server.http).await.unwrap();
    stream
        .write_all(b"GET /health/liveness HTTP/1.1\r\nHost: hse\r\n")
        .await
        .unwrap();
    // A header line every 50 ms keeps bytes moving (the idle timeout never
    // fires) but never ends the head.
    let trickle = async {
        for i in 0.. {
            if stream.write_all(format!("x-{i}: y\r\n").as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(
        tokio::time::timeout(WITHIN, trickle).await.is_ok(),
        "a half-open request head still open after {WITHIN:?}"
    );
    let mut fresh = TcpStream::connect(server.http).await.unwrap();
    assert_eq!(get(&mut fresh, "/health/liveness").await, Some(200));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = binary::start([
        ("HSE_HEADER_TIMEOUT_MS", "60000"),
        ("HSE_IDLE_TIMEOUT_MS", "300"),
    ]);
    let mut stream = TcpStream::connect(server.http).await.unwrap();
    assert_eq!(get(&mut stream, "/health/liveness").await, Some(200));
    assert!(
        closed_within(&mut stream, WITHIN).await,
        "an idle keep-alive connection still open after {WITHIN:?}"
    );
    let mut silent = TcpStream::connect(server.http).await.unwrap();
    assert!(
        closed_within(&mut silent, WITHIN).await,
        "a connection that never spoke still open after {WITHIN:?}"
    );
}

#[tokio::test]
async fn one_address_gets_its_share_and_the_total_cap_holds_for_everyone() {
    let server = binary::start([
        ("HSE_MAX_CONNECTIONS", "5"),
        ("HSE_MAX_CONNECTIONS_PER_IP", "3"),
    ]);
    let mut flood = Vec::new();
    for _ in 0..3 {
        let mut held = connect_from("127.0.0.2", server.http).await;
        assert_eq!(get(&mut held, "/health/liveness").await, Some(200));
        flood.push(held);
    }
    let mut excess = connect_from("127.0.0.2", server.http).await;
    assert!(refused(&mut excess).await, "a 4th connection from 127.0.0.2 was served");
    let mut probe = connect_from("127.0.0.1", server.http).await;
    assert_eq!(
        get(&mut probe, "/health/liveness").await,
        Some(200),
        "liveness from another address while 127.0.0.2 is at its cap"
    );
    let mut other = connect_from("127.0.0.3", server.http).await;
    assert_eq!(get(&mut other, "/health/liveness").await, Some(200));
    // 3 + probe + other = 5: the total cap now refuses every address.
    let mut over_total = connect_from("127.0.0.4", server.http).await;
    assert!(refused(&mut over_total).await, "a 6th connection was served");
    drop(flood.pop());
    let mut after = connect_from("127.0.0.4", server.http).await;
    let mut served = None;
    for _ in 0..50 {
        served = get(&mut after, "/health/liveness").await;
        if served.is_some() {
            break;
        }
        // The freed place is given back once the server has seen the close.
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = connect_from("127.0.0.4", server.http).await;
    }
    assert_eq!(served, Some(200), "a closed connection's place was not freed");
}

#[tokio::test]
async fn a_websocket_holds_its_place_and_must_say_hello_in_time() {
    let server = binary::start([
        ("HSE_MAX_CONNECTIONS_PER_IP", "1"),
        ("HSE_DEVICE_HELLO_TIMEOUT_MS", "300"),
    ]);
    let stream = connect_from("127.0.0.2", server.http).await;
    let url = format!("ws://{}/v1/devices/ws", server.http);
    let (socket, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let mut second = connect_from("127.0.0.2", server.http).await;
    assert!(
        refused(&mut second).await,
        "an upgraded WebSocket gave up its place"
    );
    let mut raw = socket.into_inner();
    assert!(
        closed_within(&mut raw, WITHIN).await,
        "a WebSocket without hello still open after {WITHIN:?}"
    );
}

#[tokio::test]
async fn a_websocket_device_is_not_cut_by_the_http_idle_timeout() {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message;

    let server = binary::start([
        ("HSE_ROOT_PASSWORD", ROOT_PASSWORD),
        ("HSE_IDLE_TIMEOUT_MS", "200"),
    ]);
    let root = server.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let (lock, secret) = register_locks(&root, 1).await.unwrap().remove(0);
    let stream = TcpStream::connect(server.http).await.unwrap();
    let url = format!("ws://{}/v1/devices/ws", server.http);
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let mut exchange = async |frame: Value| {
        socket.send(Message::Text(frame.to_string().into())).await.ok()?;
        loop {
            match tokio::time::timeout(WITHIN, socket.next()).await.ok()?? {
                Ok(Message::Text(text)) => return serde_json::from_str::<Value>(&text).ok(),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    let hello = json!({"type": "hello", "device_id": lock, "token": secret, "protocol": 1});
    let welcome = exchange(hello).await.expect("welcomed");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pong = exchange(json!({"type": "ping"})).await;
    assert_eq!(
        pong.as_ref().map(|p| p["type"].clone()),
        Some(json!("pong")),
        "the device session was cut after 800 ms of silence"
    );
}

#[tokio::test]
async fn a_device_that_never_completes_hello_is_closed_at_the_deadline() {
    let server = binary::start([("HSE_DEVICE_HELLO_TIMEOUT_MS", "300")]);
    let addr = server.device_tcp.expect("the ingest role listens");
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(br#"{"type":"hel"#).await.unwrap();
    assert!(
        closed_within(&mut silent, WITHIN).await,
        "a silent device connection still open after {WITHIN:?}"
    );
    assert!(
        closed_within(&mut partial, WITHIN).await,
        "a device connection with half a hello still open after {WITHIN:?}"
    );
}

#[tokio::test]
async fn the_grpc_listener_caps_each_address() {
    let server = binary::start([("HSE_MAX_CONNECTIONS_PER_IP", "1")]);
    let addr = server.grpc.expect("the grpc role listens");
    // An admitted HTTP/2 connection gets the server's SETTINGS first.
    let mut held = connect_from("127.0.0.2", addr).await;
    held.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut settings = [0u8; 9];
    tokio::time::timeout(WITHIN, held.read_exact(&mut settings))
        .await
        .expect("settings in time")
        .expect("the first connection is served");
    let mut excess = connect_from("127.0.0.2", addr).await;
    assert!(refused(&mut excess).await, "a 2nd gRPC connection from 127.0.0.2 was served");
    let mut other = connect_from("127.0.0.3", addr).await;
    other.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    tokio::time::timeout(WITHIN, other.read_exact(&mut settings))
        .await
        .expect("settings in time")
        .expect("another address is served");
}

#[tokio::test]
async fn a_silent_grpc_connection_is_closed_after_the_idle_timeout() {
    let server = binary::start([("HSE_IDLE_TIMEOUT_MS", "300")]);
    let addr = server.grpc.expect("the grpc role listens");
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut silent, WITHIN).await,
        "a silent gRPC connection still open after {WITHIN:?}"
    );
}

/// The size of the `/metrics` text.
async fn metrics_size(addr: SocketAddr) -> usize {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: hse\r\n\r\n")
        .await
        .unwrap();
    let (status, body) = answer(&mut stream).await.expect("metrics answer");
    assert_eq!(status, 200);
    body.len()
}

/// Sends `method path` for each pair, reconnecting when the server closes.
async fn send_all(addr: SocketAddr, requests: impl Iterator<Item = (String, String)>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for (method, path) in requests {
        if request(&mut stream, &method, &path).await.is_none() {
            stream = TcpStream::connect(addr).await.unwrap();
        }
    }
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let server = binary::start::<&str, &str>([]);
    let junk = |i: usize| {
        (
            format!("JUNK{i}{}", "X".repeat(100)),
            format!("/junk/{i}/{}", "y".repeat(100)),
        )
    };
    // Warm up: the series these requests fall into exist from now on.
    send_all(server.http, (0..2).flat_map(|i| {
        let (method, path) = junk(i);
        [(method.clone(), "/health/liveness".to_owned()), ("GET".to_owned(), path.clone()), (method, path)]
    }))
    .await;
    metrics_size(server.http).await;
    let before = metrics_size(server.http).await;
    send_all(server.http, (2..1002).flat_map(|i| {
        let (method, path) = junk(i);
        [(method.clone(), "/health/liveness".to_owned()), ("GET".to_owned(), path.clone()), (method, path)]
    }))
    .await;
    let after = metrics_size(server.http).await;
    // Counts and sums grow by a few digits; one series more would be ~2 kB.
    assert!(
        after < before + 1024,
        "/metrics grew from {before} to {after} bytes after 1,000 invented methods and paths"
    );
}
