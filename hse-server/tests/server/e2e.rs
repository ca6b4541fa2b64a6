//! End to end, as clients see the real binary: the onboarding story over
//! HTTP; a door lock connecting over TCP, streaming events and answering
//! commands; a service following the lock over gRPC with the service token;
//! a booking confirmed, its code programmed on the lock, used and counted;
//! the stay checked in and out by the clock; events, state, rollups and
//! metrics over REST. On PostgreSQL and Redis, and on the embedded default.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use hse_devices::breaker::BreakerSettings;
use hse_devices::client::DevicesClient;
use hse_devices::grpc::pb::{DeviceChangeEvent, SubscriptionRequest};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::binary::{self, GRPC_TOKEN, ROOT, ROOT_PASSWORD};
use crate::http::{Api, id};
use crate::line_device::{LineDevice, register_locks};
use crate::onboarding::{Onboarded, Room, onboard};
use crate::services;

/// How long any one step may take.
const WAIT: Duration = Duration::from_secs(15);
/// How far ahead the stay starts and how long it lasts: long enough to
/// confirm and program the code first, short enough for a test.
const LEAD: Duration = Duration::from_secs(6);
const STAY: Duration = Duration::from_secs(3);

/// A door lock on its own task: it answers every command as done, passes
/// every frame it receives on, and sends what the test gives it.
struct SimulatedLock {
    outbox: mpsc::UnboundedSender<Value>,
    inbox: mpsc::UnboundedReceiver<Value>,
}

impl SimulatedLock {
    async fn connect(addr: SocketAddr, room: &Room) -> Self {
        let LineDevice { mut lines, mut out } = LineDevice::connect(addr, &room.lock, &room.secret)
            .await
            .expect("the lock is welcomed");
        let (outbox, mut to_send) = mpsc::unbounded_channel::<Value>();
        let (received, inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    line = lines.next_line() => {
                        let Ok(Some(line)) = line else { return };
                        let frame: Value = serde_json::from_str(&line).expect("JSON frames");
                        if frame["type"] == "command" {
                            let done = json!({"type": "command_result", "request_id": frame["request_id"],
                                              "success": true, "message": "done"});
                            if out.write_all(format!("{done}\n").as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        if received.send(frame).is_err() {
                            return;
                        }
                    }
                    Some(frame) = to_send.recv() => {
                        if out.write_all(format!("{frame}\n").as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Self { outbox, inbox }
    }

    /// Sends `frame` to the server.
    fn send(&self, frame: Value) {
        self.outbox.send(frame).expect("the lock is connected");
    }

    /// The next frame from the server that `wanted` accepts (others are
    /// skipped).
    async fn expect(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.inbox.recv())
                .await
                .expect("the awaited frame in time")
                .expect("the lock is connected");
            if wanted(&frame) {
                return frame;
            }
        }
    }

    /// Sends events frame `seq` and waits for its acknowledgement.
    async fn report(&mut self, seq: u64, events: Value) {
        self.send(json!({"type": "events", "seq": seq, "events": events}));
        let ack = self
            .expect(|f| f["type"] == "ack" || f["type"] == "nack")
            .await;
        assert_eq!((&ack["type"], &ack["seq"]), (&json!("ack"), &json!(seq)));
    }
}

/// The variables of a story server: the root account, the gRPC service
/// token, check-in/out passes every 200 ms, then `services`.
pub(crate) fn story_env(services: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("HSE_ROOT_PASSWORD", ROOT_PASSWORD.to_owned()),
        ("HSE_GRPC_TOKEN", GRPC_TOKEN.to_owned()),
        ("HSE_STAY_INTERVAL_MS", "200".to_owned()),
        ("HSE_SHUTDOWN_TIMEOUT_S", "8".to_owned()),
    ];
    env.extend(services);
    env
}

/// The story of the module doc, on the binary started with `env`.
pub(crate) async fn the_whole_story(env: &[(&'static str, String)]) {
    let server = binary::start(env.iter().map(|(k, v)| (*k, v)));
    let story = onboard(&server.url(), ROOT, ROOT_PASSWORD, "")
        .await
        .expect("the onboarding story");
    let room = &story.rooms[0];
    let (status, _) = story
        .partner
        .send(
            Method::GET,
            &format!("/v1/establishments/{}", story.establishment),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the partner sees its client's hotel"
    );
    let changes = follow_over_grpc(server.grpc.expect("grpc role"), &room.lock).await;
    let device_tcp = server.device_tcp.expect("ingest role");
    let refused = LineDevice::connect(device_tcp, &room.lock, "not the secret").await;
    let refused = refused
        .err()
        .expect("a wrong secret is refused")
        .to_string();
    assert!(refused.contains("unauthorized"), "{refused}");
    let mut lock = SimulatedLock::connect(device_tcp, room).await;
    events_are_stored_followed_and_rolled_up(&story.admin, &mut lock, &room.lock, changes).await;
    a_stay_is_coded_used_and_moved_by_the_clock(&story, &mut lock).await;
    let metrics = metrics_text(server.http).await;
    assert!(
        metrics.contains("hse_devices_code_uses_total 1"),
        "the use is counted in /metrics"
    );
    drop(lock);
    let stopped = server.terminate(Duration::from_secs(15)).await;
    assert!(stopped.success(), "{stopped}");
}

type Changes = mpsc::Receiver<Result<DeviceChangeEvent, tonic::Status>>;

/// A service follows `lock` over gRPC from the start of the feed: refused
/// without the service token, let in with it.
async fn follow_over_grpc(addr: SocketAddr, lock: &str) -> Changes {
    let url = format!("http://{addr}");
    let anonymous = DevicesClient::connect_lazy(&url, BreakerSettings::default()).unwrap();
    let refused = anonymous
        .status(lock)
        .await
        .expect_err("the service token is required");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
    let service = anonymous.with_token(GRPC_TOKEN).unwrap();
    let status = service.status(lock).await.expect("the token lets it in");
    assert_eq!(status.device_id, lock);
    service.subscribe(SubscriptionRequest {
        device_ids: vec![lock.to_owned()],
        event_types: vec!["temperature".into()],
        client_id: "e2e".into(),
        resume_cursor: "0".into(),
    })
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The lock reports; gRPC delivers what the service asked for; REST shows
/// the stored events, the state and the rollups; a command over HTTP
/// reaches the lock and comes back with its answer.
async fn events_are_stored_followed_and_rolled_up(
    admin: &Api,
    lock: &mut SimulatedLock,
    lock_id: &str,
    mut changes: Changes,
) {
    let ts = now_ms() - 1000;
    lock.report(
        1,
        json!([
            {"event_type": "temperature", "value": 21.5, "unit": "C", "ts_ms": ts},
            {"event_type": "temperature", "value": 22.5, "unit": "C", "ts_ms": ts + 1},
            {"event_type": "alarm", "ts_ms": ts + 2, "metadata": {"why": "forced"}},
            {"event_type": "battery", "value": 87.0, "ts_ms": ts + 3},
        ]),
    )
    .await;

    // gRPC: the requested type and the always-relevant alarm, not battery.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = tokio::time::timeout(WAIT, changes.recv())
            .await
            .expect("a change over gRPC in time")
            .expect("the subscription is open")
            .expect("a change, not an error");
        assert_eq!(change.device_id, lock_id);
        seen.push(change.event_type);
    }
    assert_eq!(seen, ["temperature", "temperature", "alarm"]);

    let events = stored_events(admin, lock_id, 4).await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0]["event_type"], "battery", "newest first");
    let status = admin
        .get(&format!("/v1/devices/{lock_id}/status"))
        .await
        .unwrap();
    assert_eq!(
        (&status["status"], &status["connected"]),
        (&json!("online"), &json!(true)),
        "{status}"
    );
    assert_eq!(status["last_events"]["temperature"]["value"], 22.5);
    let series = admin
        .get(&format!(
            "/v1/devices/{lock_id}/aggregates?bucket=hour&event_type=temperature"
        ))
        .await
        .unwrap();
    let buckets = series["items"].as_array().expect("buckets");
    let count: i64 = buckets.iter().filter_map(|b| b["count"].as_i64()).sum();
    let sum: f64 = buckets.iter().filter_map(|b| b["sum"].as_f64()).sum();
    assert_eq!((count, sum), (2, 44.0), "{series}");

    let outcome = admin
        .post(
            &format!("/v1/devices/{lock_id}/commands"),
            json!({"command_type": "unlock", "params": {"seconds": 3}}),
            StatusCode::OK,
        )
        .await
        .unwrap();
    assert_eq!(outcome["success"], true, "{outcome}");
    let command = lock.expect(|f| f["type"] == "command").await;
    assert_eq!(
        (&command["command_type"], &command["params"]["seconds"]),
        (&json!("unlock"), &json!(3))
    );
}

/// The REST view of the lock's events once `n` are stored.
async fn stored_events(api: &Api, lock: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = api
            .get(&format!("/v1/devices/{lock}/events?limit=500"))
            .await
            .unwrap();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n || tokio::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A guest books room 101 a few seconds ahead; confirming programs a code
/// on the lock, which acknowledges it; the lock reports the code used and
/// booking counts it; the stay worker checks the guest in and out when
/// the clock reaches each time, not before.
async fn a_stay_is_coded_used_and_moved_by_the_clock(story: &Onboarded, lock: &mut SimulatedLock) {
    let admin = &story.admin;
    let guest = admin
        .post(
            "/v1/guests",
            json!({"organization_id": story.organization, "first_name": "Ana", "email": "ana@guest.example"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let check_in = (Utc::now() + LEAD).trunc_subsecs(0);
    let check_out = check_in + STAY;
    let booking = admin
        .post(
            "/v1/bookings",
            json!({"area_id": story.rooms[0].area, "guest_id": id(&guest).unwrap(),
                   "stay": {"check_in": check_in, "check_out": check_out}}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let booking = id(&booking).unwrap();
    admin
        .post(
            &format!("/v1/bookings/{booking}/confirm"),
            json!({}),
            StatusCode::OK,
        )
        .await
        .unwrap();
    let confirmed = admin.get(&format!("/v1/bookings/{booking}")).await.unwrap();
    if Utc::now() < check_in {
        assert_eq!(confirmed["status"], "confirmed", "not checked in early");
    }
    let program = lock
        .expect(|f| f["type"] == "command" && f["command_type"] == "program_code")
        .await;
    let code = code_when(admin, &booking, |c| c["state"] == "active").await;
    assert_eq!(code["state"], "active", "{code}");
    assert_eq!(program["params"]["code_id"], code["id"]);
    lock.report(
        2,
        json!([{"event_type": "code_used", "metadata": {"code_id": code["id"]}}]),
    )
    .await;
    let used = code_when(admin, &booking, |c| c["usage_count"] == 1).await;
    assert_eq!(used["usage_count"], 1, "{used}");

    let checked_in = status_when(admin, &booking, "in-progress").await;
    assert!(
        checked_in >= check_in,
        "checked in at {checked_in}, before {check_in}"
    );
    let checked_out = status_when(admin, &booking, "completed").await;
    assert!(
        checked_out >= check_out,
        "checked out at {checked_out}, before {check_out}"
    );
}

/// The booking's door code once `done` holds for it (or the last seen).
pub(crate) async fn code_when(api: &Api, booking: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let codes = api
            .get(&format!("/v1/bookings/{booking}/doorlock-codes"))
            .await
            .unwrap();
        let code = codes["items"][0].clone();
        if done(&code) || tokio::time::Instant::now() > deadline {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the booking was first seen in `status`.
async fn status_when(api: &Api, booking: &str, status: &str) -> DateTime<Utc> {
    let deadline = tokio::time::Instant::now() + WAIT + LEAD + STAY;
    loop {
        let seen = api.get(&format!("/v1/bookings/{booking}")).await.unwrap();
        if seen["status"] == status {
            return Utc::now();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} instead of {status}",
            seen["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /metrics` as text.
async fn metrics_text(addr: SocketAddr) -> String {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[sqlx::test(migrations = false)]
async fn on_postgres_and_redis_the_whole_story_runs_on_the_real_binary(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let services = services::env(&options).await;
    the_whole_story(&story_env(services.clone())).await;
    services::forget_redis(&services).await;
}

#[tokio::test]
async fn on_the_embedded_default_the_whole_story_runs_on_the_real_binary() {
    the_whole_story(&story_env(Vec::new())).await;
}

#[tokio::test]
async fn a_device_over_websocket_is_acknowledged_and_stored() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = binary::start([("HSE_ROOT_PASSWORD", ROOT_PASSWORD)]);
    let root = server.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let (lock, secret) = register_locks(&root, 1).await.unwrap().remove(0);
    let stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let url = format!("ws://{}/v1/devices/ws", server.http);
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let mut exchange = async |frame: Value| {
        socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(WAIT, socket.next())
                .await
                .expect("an answer in time")
                .expect("the socket is open")
                .unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str::<Value>(&text).unwrap();
            }
        }
    };
    let welcome =
        exchange(json!({"type": "hello", "device_id": lock, "token": secret, "protocol": 1})).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let ack = exchange(json!({"type": "event", "seq": 7, "event_type": "door", "value": 1})).await;
    assert_eq!((&ack["type"], &ack["seq"]), (&json!("ack"), &json!(7)));
    let status = root
        .get(&format!("/v1/devices/{lock}/status"))
        .await
        .unwrap();
    assert_eq!(status["protocol"], "websocket", "{status}");
    let events = stored_events(&root, &lock, 1).await;
    assert_eq!(events[0]["source"], "websocket", "{events:?}");
    let (_, not_a_socket) = server
        .api()
        .send(Method::GET, "/v1/devices/ws", None)
        .await
        .unwrap();
    assert_eq!(not_a_socket["code"], "websocket_required");
    drop(socket);
    assert!(server.terminate(Duration::from_secs(15)).await.success());
}
