//! One table of bad events, sent through every transport: TCP frames,
//! WebSocket messages and gRPC `NotifyDeviceEvents`. Each is refused with
//! the same code and message on each (the `nack` code; on gRPC the
//! `hse-code` metadata entry, with `INVALID_ARGUMENT` or `OUT_OF_RANGE`),
//! and none is stored; events at every limit are accepted on each.
//!
//! Rows are written once as fields; each transport encodes them its way.
//! Proto3 defaults cannot say "sent empty", so no row relies on an empty
//! `event_id` or `unit`, or a `ts_ms` of 0 (on gRPC those mean "not sent").

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hse_core::{DeviceId, Secret};
use hse_devices::codec::{EARLIEST_STORABLE_MS, FUTURE_TOLERANCE_MS};
use hse_devices::grpc::CODE_METADATA;
use hse_devices::grpc::pb::{DeviceEvent, NotifyEventsRequest};
use hse_devices::session::{Peer, run_session};
use hse_devices::transport::{ChannelWriter, TextFrames};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use super::{Device, Rig, rig};

/// One event as fields, and the code every transport must refuse it with.
#[derive(Clone, Debug)]
struct Row {
    why: &'static str,
    event_type: String,
    event_id: Option<String>,
    ts_ms: Option<i64>,
    value: Option<f64>,
    unit: Option<String>,
    /// JSON text.
    metadata: Option<String>,
    code: &'static str,
}

fn row(why: &'static str) -> Row {
    Row {
        why,
        event_type: "temperature".into(),
        event_id: None,
        ts_ms: None,
        value: None,
        unit: None,
        metadata: None,
        code: "invalid",
    }
}

fn of_type(why: &'static str, event_type: &str) -> Row {
    Row {
        event_type: event_type.into(),
        ..row(why)
    }
}

fn with_metadata(why: &'static str, json: impl Into<String>) -> Row {
    Row {
        metadata: Some(json.into()),
        ..row(why)
    }
}

fn at(why: &'static str, ts_ms: i64) -> Row {
    Row {
        ts_ms: Some(ts_ms),
        code: "out_of_range",
        ..row(why)
    }
}

fn with_id(why: &'static str, id: &str) -> Row {
    Row {
        event_id: Some(id.into()),
        ..row(why)
    }
}

/// Metadata nested `depth` objects deep (`{}` is 1).
fn nested(depth: usize) -> String {
    (1..depth).fold("{}".to_owned(), |inner, _| format!(r#"{{"a":{inner}}}"#))
}

/// Metadata of exactly `bytes` compact bytes.
fn sized(bytes: usize) -> String {
    json!({ "a": "x".repeat(bytes - r#"{"a":""}"#.len()) }).to_string()
}

const DAY_MS: i64 = 86_400_000;

fn table(now: i64) -> Vec<Row> {
    let unit = |why, unit: &str| Row {
        unit: Some(unit.into()),
        ..row(why)
    };
    let value = |why, value| Row {
        value: Some(value),
        ..row(why)
    };
    let many_keys: serde_json::Map<String, Value> =
        (0..400).map(|i| (format!("k{i:03}"), json!(i))).collect();
    vec![
        of_type("empty type", ""),
        of_type("type of 51 characters", &"a".repeat(51)),
        of_type("type of 51 dots", &".".repeat(51)),
        of_type("upper case", "Temperature"),
        of_type("all upper case", "TEMP"),
        of_type("space", "door open"),
        of_type("slash", "door/open"),
        of_type("colon", "temp:1"),
        of_type("plus", "a+b"),
        of_type("comma", "a,b"),
        of_type("accent", "température"),
        of_type("CJK", "温度"),
        of_type("emoji", "fire🔥"),
        of_type("newline", "temp\n"),
        of_type("tab", "temp\t"),
        of_type("NUL in type", "temp\0"),
        value("infinite value", f64::INFINITY),
        value("negative infinite value", f64::NEG_INFINITY),
        unit("unit of 21 characters", &"x".repeat(21)),
        unit("unit of 21 two-byte characters", &"°".repeat(21)),
        unit("NUL in unit", "C\0"),
        unit("unit of NUL only", "\0"),
        with_metadata("metadata of 4,097 bytes", sized(4097)),
        with_metadata(
            "metadata of many keys over 4 KiB",
            Value::Object(many_keys).to_string(),
        ),
        with_metadata("metadata 9 objects deep", nested(9)),
        with_metadata(
            "metadata 9 levels with arrays",
            r#"{"a":[[[[[[[[1]]]]]]]]}"#,
        ),
        with_metadata("NUL in a metadata key", r#"{"a\u0000b":1}"#),
        with_metadata("NUL in a metadata string", r#"{"a":"x\u0000y"}"#),
        with_metadata("NUL deep in metadata", r#"{"a":{"b":["ok","\u0000"]}}"#),
        with_metadata("metadata an array", "[1,2]"),
        with_metadata("metadata a string", r#""text""#),
        with_metadata("metadata a number", "1"),
        with_metadata("metadata a boolean", "true"),
        with_metadata("metadata with an infinite number", r#"{"x":1e309}"#),
        with_metadata(
            "metadata with an infinite number in a list",
            r#"{"x":[-1e400]}"#,
        ),
        at("6 minutes ahead", now + FUTURE_TOLERANCE_MS + 60_000),
        at("a day ahead", now + DAY_MS),
        at("the largest time", i64::MAX),
        at("past the 730 days of retention", now - 731 * DAY_MS),
        at("one millisecond before 1970", -1),
        at("the smallest time", i64::MIN),
        at("before PostgreSQL's earliest", EARLIEST_STORABLE_MS - 1),
        with_id("event_id not a UUID", "not-a-uuid"),
        with_id("event_id a number as text", "12345"),
        with_id(
            "event_id one digit short",
            "0190d1f6-1b2c-7d3e-9f40-6b7c8d9e0f1",
        ),
        with_id(
            "event_id one digit long",
            "0190d1f6-1b2c-7d3e-9f40-6b7c8d9e0f1aa",
        ),
        with_id("event_id not hex", "g190d1f6-1b2c-7d3e-9f40-6b7c8d9e0f1a"),
        with_id(
            "event_id with a space",
            " 0190d1f6-1b2c-7d3e-9f40-6b7c8d9e0f1a",
        ),
        with_id(
            "event_id with NUL",
            "0190d1f6-1b2c-7d3e-9f40-6b7c8d9e0f1a\0",
        ),
        Row {
            ts_ms: Some(now + DAY_MS),
            ..of_type("bad type and bad time: the type is named", "Bad")
        },
        Row {
            ts_ms: Some(i64::MIN),
            ..unit("long unit and bad time: the unit is named", &"x".repeat(30))
        },
    ]
}

/// Events at every limit, which each transport accepts.
fn at_the_limits(now: i64) -> Vec<Row> {
    let accepted = |why| Row {
        event_id: Some(uuid::Uuid::now_v7().to_string()),
        code: "ok",
        ..row(why)
    };
    vec![
        Row {
            event_type: "a.b-c_1".repeat(8)[..50].to_owned(),
            ts_ms: Some(now + FUTURE_TOLERANCE_MS - 60_000),
            value: Some(f64::MAX),
            unit: Some("°".repeat(20)),
            metadata: Some(sized(4096)),
            ..accepted("type, unit, value, metadata size and time at their limits")
        },
        Row {
            ts_ms: Some(now - 729 * DAY_MS),
            metadata: Some(nested(8)),
            ..accepted("metadata 8 levels deep, a time within retention")
        },
    ]
}

/// The event's fields as JSON members (a non-finite value as `1e309`,
/// which a device's encoder could send).
fn json_members(row: &Row) -> String {
    let mut members = vec![format!(r#""event_type":{}"#, json!(row.event_type))];
    if let Some(id) = &row.event_id {
        members.push(format!(r#""event_id":{}"#, json!(id)));
    }
    if let Some(ts) = row.ts_ms {
        members.push(format!(r#""ts_ms":{ts}"#));
    }
    if let Some(v) = row.value {
        let text = match v {
            v if v == f64::INFINITY => "1e309".to_owned(),
            v if v == f64::NEG_INFINITY => "-1e309".to_owned(),
            v => json!(v).to_string(),
        };
        members.push(format!(r#""value":{text}"#));
    }
    if let Some(unit) = &row.unit {
        members.push(format!(r#""unit":{}"#, json!(unit)));
    }
    if let Some(metadata) = &row.metadata {
        members.push(format!(r#""metadata":{metadata}"#));
    }
    members.join(",")
}

fn frame(seq: usize, row: &Row) -> String {
    format!(r#"{{"type":"event","seq":{seq},{}}}"#, json_members(row))
}

fn proto(device_id: DeviceId, row: &Row) -> DeviceEvent {
    DeviceEvent {
        device_id: device_id.to_string(),
        event_type: row.event_type.clone(),
        timestamp: 0,
        value: row.value.unwrap_or(0.0),
        unit: row.unit.clone().unwrap_or_default(),
        event_id: row.event_id.clone().unwrap_or_default(),
        timestamp_ms: row.ts_ms.unwrap_or(0),
        has_value: row.value.is_some(),
        metadata_json: row.metadata.clone().unwrap_or_default(),
    }
}

/// `(code, message)` of a device's answer: `("ok", "")` for an ack.
fn answer(frame: &Value) -> (String, String) {
    match frame["type"].as_str() {
        Some("ack") => ("ok".into(), String::new()),
        Some("nack") => (
            frame["code"].as_str().unwrap_or_default().into(),
            frame["message"].as_str().unwrap_or_default().into(),
        ),
        _ => panic!("not an answer to an event frame: {frame}"),
    }
}

async fn over_tcp(rig: &Rig, rows: &[Row]) -> Vec<(String, String)> {
    let (_, mut device) = Device::connect(rig).await;
    let mut answers = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        // Written as text: `1e309` is no number serde_json would write.
        let line = format!("{}\n", frame(i + 1, row));
        device.write.write_all(line.as_bytes()).await.unwrap();
        answers.push(answer(&device.recv().await));
    }
    answers
}

/// A WebSocket endpoint on port 0 that runs the rig's sessions the way the
/// server's handler does (text messages in, text messages out).
async fn websocket_endpoint(rig: &Rig) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = rig.sessions.clone();
    tokio::spawn(async move {
        while let Ok((stream, remote)) = listener.accept().await {
            let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
                continue;
            };
            let (mut to_device, from_device) = socket.split();
            let frames = from_device.filter_map(|m| async move {
                match m {
                    Ok(Message::Text(text)) => Some(text.as_str().to_owned()),
                    _ => None,
                }
            });
            let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
            let peer = Peer {
                protocol: "websocket",
                remote_address: remote.to_string(),
            };
            let session = run_session(
                sessions.clone(),
                peer,
                TextFrames::new(Box::pin(frames)),
                ChannelWriter::new(tx),
            );
            tokio::spawn(session);
            tokio::spawn(async move {
                while let Some(frame) = rx.recv().await {
                    if to_device.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Sends one text message and returns the next text message as JSON.
async fn exchange(socket: &mut Socket, text: String) -> Value {
    socket.send(Message::Text(text.into())).await.unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no answer within 10 s")
            .expect("the server closed the WebSocket")
            .unwrap();
        if let Message::Text(reply) = next {
            return serde_json::from_str(reply.as_str()).unwrap();
        }
    }
}

async fn over_websocket(rig: &Rig, rows: &[Row]) -> Vec<(String, String)> {
    let addr = websocket_endpoint(rig).await;
    let id = DeviceId::new();
    let secret = Secret::generate().unwrap();
    rig.directory.register(id, secret.hash());
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let url = format!("ws://{addr}/v1/devices/ws");
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let hello = json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":1});
    assert_eq!(
        exchange(&mut socket, hello.to_string()).await["type"],
        "welcome"
    );
    let mut answers = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        answers.push(answer(&exchange(&mut socket, frame(i + 1, row)).await));
    }
    answers
}

async fn over_grpc(rig: &Rig, rows: &[Row]) -> Vec<(String, String)> {
    let device_id = DeviceId::new();
    let mut client = rig.client.clone();
    let mut answers = Vec::new();
    for row in rows {
        let request = NotifyEventsRequest {
            events: vec![proto(device_id, row)],
        };
        answers.push(match client.notify_device_events(request).await {
            Ok(_) => ("ok".into(), String::new()),
            Err(status) => {
                let code = status.metadata().get(CODE_METADATA);
                let code = code.and_then(|c| c.to_str().ok()).unwrap_or("none");
                let expected_status = match code {
                    "out_of_range" => tonic::Code::OutOfRange,
                    _ => tonic::Code::InvalidArgument,
                };
                assert_eq!(status.code(), expected_status, "{}", status.message());
                (code.to_owned(), status.message().to_owned())
            }
        });
    }
    answers
}

#[tokio::test]
async fn every_transport_refuses_the_same_bad_events_with_the_same_code_and_stores_none() {
    let rig = rig().await;
    let now = chrono::Utc::now().timestamp_millis();
    let mut rows = table(now);
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let accepted = at_the_limits(now);
    rows.extend(accepted.iter().cloned());
    let tcp = over_tcp(&rig, &rows).await;
    let websocket = over_websocket(&rig, &rows).await;
    let grpc = over_grpc(&rig, &rows).await;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(tcp[i].0, row.code, "TCP: {} ({})", row.why, tcp[i].1);
        assert_eq!(websocket[i], tcp[i], "WebSocket and TCP: {}", row.why);
        assert_eq!(grpc[i], tcp[i], "gRPC and TCP: {}", row.why);
    }

    // Each accepted event went in once per transport, from three devices.
    // Nothing refused is among what was stored.
    let expected = 3 * accepted.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rig.sink.stored().len() < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stored = rig.sink.stored();
    assert_eq!(stored.len(), expected, "{stored:?}");
    let ids: Vec<_> = accepted.iter().map(|r| r.event_id.clone()).collect();
    for event in &stored {
        assert!(ids.contains(&Some(event.event_id.to_string())), "{event:?}");
    }
}
