//! The whole server as its clients see it, on free ports: an operator
//! registers a door lock over HTTP; the lock connects over TCP with its
//! secret, streams events and answers a command; a service follows the
//! changes over gRPC; REST shows the stored events, state and rollups.
//! Once on the embedded default, once on PostgreSQL and Redis; and a
//! shutdown under load loses no acknowledged event.

#[path = "../examples/support/http.rs"]
mod http;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use hse_devices::breaker::BreakerSettings;
use hse_devices::client::DevicesClient;
use hse_devices::grpc::pb::SubscriptionRequest;
use hse_server::Config;
use hyper::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use uuid::Uuid;

use http::{Api, id};

const ROOT: &str = "root@hse.local";
const ROOT_PASSWORD: &str = "an end-to-end root password";
const WAIT: Duration = Duration::from_secs(10);

/// A server running in this process on free ports.
struct Running {
    api: Api,
    http: SocketAddr,
    device_tcp: SocketAddr,
    grpc: SocketAddr,
    devices: hse_server::devices::Devices,
    stop: oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(vars: &[(&str, String)]) -> Running {
    let mut all: Vec<(String, String)> = [
        ("HSE_HTTP_ADDR", "127.0.0.1:0"),
        ("HSE_GRPC_ADDR", "127.0.0.1:0"),
        ("HSE_DEVICE_TCP_ADDR", "127.0.0.1:0"),
        ("HSE_ROOT_PASSWORD", ROOT_PASSWORD),
        ("HSE_SHUTDOWN_TIMEOUT_S", "8"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let config = Config::from_lookup(|k| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .expect("config");
    let server = hse_server::build(&config).await.expect("server builds");
    hse_server::bootstrap::bootstrap_root(server.state(), ROOT, Some(ROOT_PASSWORD.into()))
        .await
        .expect("root");
    let http = server.local_addr().unwrap();
    let device_tcp = server.device_tcp_addr().expect("ingest role");
    let grpc = server.grpc_addr().expect("grpc role");
    let devices = server.state().devices.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Running {
        api: Api::new(&format!("http://{http}")),
        http,
        device_tcp,
        grpc,
        devices,
        stop,
        serving,
    }
}

impl Running {
    /// Stops as SIGTERM would and waits until the server has exited.
    async fn shut_down(self) -> hse_server::devices::Devices {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(20), self.serving)
            .await
            .expect("stopped within the deadline")
            .unwrap()
            .unwrap();
        self.devices
    }
}

/// What root registered: an organization, a hotel, a room and its lock.
struct Registered {
    root: Api,
    org: String,
    room: String,
    lock: String,
    secret: String,
}

/// Root registers an organization, a hotel, a room and a door lock.
async fn register_lock(api: &Api) -> Registered {
    let root = api.login(ROOT, ROOT_PASSWORD).await.unwrap();
    let org = root
        .post(
            "/v1/organizations",
            json!({"name": "Acme"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let est = root
        .post(
            "/v1/establishments",
            json!({"organization_id": id(&org).unwrap(), "name": "Hotel", "timezone": "Europe/Madrid"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let area = root
        .post(
            "/v1/areas",
            json!({"establishment_id": id(&est).unwrap(), "name": "Room 7", "type": "room"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let lock = root
        .post(
            "/v1/devices",
            json!({"area_id": id(&area).unwrap(), "device_type": "doorlock", "protocol": "hse-tcp"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let secret = lock["secret"].as_str().expect("secret once").to_owned();
    Registered {
        root,
        org: id(&org).unwrap(),
        room: id(&area).unwrap(),
        lock: id(&lock).unwrap(),
        secret,
    }
}

/// The lock's door code of `booking` once `done` holds for it.
async fn code_when(root: &Api, booking: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let codes = root
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

/// A confirmed stay's code goes onto the lock, which acknowledges it; the
/// lock then reports the code used, and booking counts it.
async fn a_booked_code_is_programmed_and_its_use_counted(
    registered: &Registered,
    device: &mut Device,
) {
    let root = &registered.root;
    let guest = root
        .post(
            "/v1/guests",
            json!({"organization_id": registered.org, "first_name": "Ana", "email": "ana@guest.example"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let stay = json!({"check_in": "2030-06-01T14:00:00Z", "check_out": "2030-06-03T10:00:00Z"});
    let booking = root
        .post(
            "/v1/bookings",
            json!({"area_id": registered.room, "guest_id": id(&guest).unwrap(), "stay": stay}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let booking = id(&booking).unwrap();
    root.post(
        &format!("/v1/bookings/{booking}/confirm"),
        json!({}),
        StatusCode::OK,
    )
    .await
    .unwrap();
    let program = device.recv().await.expect("program_code");
    assert_eq!(program["command_type"], "program_code", "{program}");
    device
        .send(
            &json!({"type": "command_result", "request_id": program["request_id"],
                      "success": true, "message": "programmed"}),
        )
        .await
        .unwrap();
    let code = code_when(root, &booking, |c| c["state"] == "active").await;
    assert_eq!(code["state"], "active", "{code}");
    assert_eq!(program["params"]["code_id"], code["id"]);
    device
        .send(
            &json!({"type": "event", "seq": 2, "event_type": "code_used",
                      "metadata": {"code_id": code["id"]}}),
        )
        .await
        .unwrap();
    assert_eq!(device.recv().await.unwrap()["type"], "ack");
    let used = code_when(root, &booking, |c| c["usage_count"] == 1).await;
    assert_eq!(used["usage_count"], 1, "{used}");
}

/// A device speaking the line protocol.
struct Device {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    out: OwnedWriteHalf,
}

impl Device {
    async fn connect(addr: SocketAddr, device_id: &str, secret: &str) -> (Self, Value) {
        let (read, out) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut device = Self {
            lines: BufReader::new(read).lines(),
            out,
        };
        device
            .send(&json!({"type": "hello", "device_id": device_id, "token": secret, "protocol": 1}))
            .await
            .unwrap();
        let welcome = device.recv().await.expect("an answer to hello");
        (device, welcome)
    }

    async fn send(&mut self, frame: &Value) -> std::io::Result<()> {
        self.out.write_all(format!("{frame}\n").as_bytes()).await
    }

    async fn recv(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .ok()?
            .ok()??;
        serde_json::from_str(&line).ok()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The REST view of the lock's events once `n` are stored.
async fn stored_events(api: &Api, lock: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = api
            .get(&format!("/v1/devices/{lock}/events?limit=500"))
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= n || tokio::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The story of the module doc, on the server started with `vars`.
async fn a_lock_over_tcp_http_and_grpc(vars: &[(&str, String)]) {
    let server = start(vars).await;
    let registered = register_lock(&server.api).await;
    let (root, lock, secret) = (&registered.root, &registered.lock, &registered.secret);

    // A wrong secret is refused without saying whether the device exists.
    let (_, refused) = Device::connect(server.device_tcp, lock, "not the secret").await;
    assert_eq!(refused["code"], "unauthorized", "{refused}");

    // A service follows the lock's changes over gRPC from the start.
    let client = DevicesClient::connect_lazy(
        &format!("http://{}", server.grpc),
        BreakerSettings::default(),
    )
    .unwrap();
    let mut changes = client.subscribe(SubscriptionRequest {
        device_ids: vec![lock.clone()],
        event_types: vec!["temperature".into()],
        client_id: "e2e".into(),
        resume_cursor: "0".into(),
    });

    let (mut device, welcome) = Device::connect(server.device_tcp, lock, secret).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let ts = now_ms() - 1000;
    device
        .send(&json!({"type": "events", "seq": 1, "events": [
            {"event_type": "temperature", "value": 21.5, "unit": "C", "ts_ms": ts},
            {"event_type": "temperature", "value": 22.5, "unit": "C", "ts_ms": ts + 1},
            {"event_type": "alarm", "ts_ms": ts + 2, "metadata": {"why": "forced"}},
            {"event_type": "battery", "value": 87.0, "ts_ms": ts + 3},
        ]}))
        .await
        .unwrap();
    let ack = device.recv().await.unwrap();
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_u64()),
        (Some("ack"), Some(1))
    );

    // gRPC: the requested type and the always-relevant alarm, not battery.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = tokio::time::timeout(WAIT, changes.recv())
            .await
            .expect("a live change")
            .unwrap()
            .unwrap();
        assert_eq!(&change.device_id, lock);
        seen.push(change.event_type);
    }
    assert_eq!(seen, ["temperature", "temperature", "alarm"]);

    // REST: stored events, current state, rollups.
    let events = stored_events(root, lock, 4).await;
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0]["event_type"], "battery", "newest first");
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.devices.queue_length().await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.devices.queue_length().await,
        0,
        "stored events leave the queue"
    );
    let status = root
        .get(&format!("/v1/devices/{lock}/status"))
        .await
        .unwrap();
    assert_eq!(status["status"], "online", "{status}");
    assert_eq!(status["connected"], true);
    assert_eq!(status["last_events"]["temperature"]["value"], 22.5);
    let series = root
        .get(&format!(
            "/v1/devices/{lock}/aggregates?bucket=hour&event_type=temperature"
        ))
        .await
        .unwrap();
    let buckets = series["items"].as_array().unwrap();
    let count: i64 = buckets.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    let sum: f64 = buckets.iter().map(|b| b["sum"].as_f64().unwrap()).sum();
    assert_eq!((count, sum), (2, 44.0), "{series}");

    // A command over HTTP reaches the lock, which answers it.
    let command = {
        let root = root.clone();
        let path = format!("/v1/devices/{lock}/commands");
        tokio::spawn(async move {
            root.post(
                &path,
                json!({"command_type": "unlock", "params": {"seconds": 3}}),
                StatusCode::OK,
            )
            .await
        })
    };
    let frame = device.recv().await.expect("the command");
    assert_eq!(frame["type"], "command", "{frame}");
    assert_eq!(frame["command_type"], "unlock");
    assert_eq!(frame["params"]["seconds"], 3);
    device
        .send(
            &json!({"type": "command_result", "request_id": frame["request_id"],
                      "success": true, "message": "opened"}),
        )
        .await
        .unwrap();
    let outcome = command.await.unwrap().unwrap();
    assert_eq!(
        (outcome["success"].as_bool(), outcome["message"].as_str()),
        (Some(true), Some("opened"))
    );
    a_booked_code_is_programmed_and_its_use_counted(&registered, &mut device).await;

    let metrics = server
        .api
        .send(hyper::Method::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(metrics.0, StatusCode::OK);
    drop(device);
    server.shut_down().await;
}

/// A device streams frames while the server shuts down; returns the ids
/// of every event it saw acknowledged.
async fn acked_while_shutting_down(
    server: Running,
    lock: &str,
    secret: &str,
) -> (Vec<Uuid>, hse_server::devices::Devices) {
    let (device, welcome) = Device::connect(server.device_tcp, lock, secret).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let sender = tokio::spawn(async move {
        let mut sent: Vec<(u64, Vec<Uuid>)> = Vec::new();
        let mut acked_upto = 0;
        let mut seq = 0;
        let (mut lines, mut out) = (device.lines, device.out);
        loop {
            seq += 1;
            let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
            let events: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| json!({"event_id": id, "event_type": "load", "value": i, "ts_ms": now_ms()}))
                .collect();
            let frame = json!({"type": "events", "seq": seq, "events": events});
            if out
                .write_all(format!("{frame}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            sent.push((seq, ids));
            // Read whatever answers are ready, without waiting for them.
            while let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_millis(1), lines.next_line()).await
            {
                let answer: Value = serde_json::from_str(&line).unwrap();
                if answer["type"] == "ack" {
                    acked_upto = answer["seq"].as_u64().unwrap();
                }
            }
            if seq > 5000 {
                break;
            }
        }
        // The answers sent before the connection closed.
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, lines.next_line()).await {
            let answer: Value = serde_json::from_str(&line).unwrap();
            if answer["type"] == "ack" {
                acked_upto = answer["seq"].as_u64().unwrap();
            }
        }
        sent.into_iter()
            .filter(|(s, _)| *s <= acked_upto)
            .flat_map(|(_, ids)| ids)
            .collect::<Vec<_>>()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let devices = server.shut_down().await;
    let acked = sender.await.unwrap();
    assert!(!acked.is_empty(), "some frames were acknowledged");
    eprintln!(
        "{} events acknowledged before the connection closed",
        acked.len()
    );
    (acked, devices)
}

#[tokio::test]
async fn on_the_embedded_default_a_lock_works_end_to_end() {
    a_lock_over_tcp_http_and_grpc(&[]).await;
}

#[tokio::test]
async fn a_device_over_websocket_is_acknowledged_and_stored() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = start(&[]).await;
    let Registered {
        root, lock, secret, ..
    } = register_lock(&server.api).await;
    let stream = TcpStream::connect(server.http).await.unwrap();
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
                .unwrap()
                .unwrap()
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
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_u64()),
        (Some("ack"), Some(7))
    );
    let status = root
        .get(&format!("/v1/devices/{lock}/status"))
        .await
        .unwrap();
    assert_eq!(status["protocol"], "websocket", "{status}");
    let events = stored_events(&root, &lock, 1).await;
    assert_eq!(events[0]["source"], "websocket", "{events:?}");
    let not_a_socket = server
        .api
        .send(hyper::Method::GET, "/v1/devices/ws", None)
        .await
        .unwrap();
    assert_eq!(not_a_socket.1["code"], "websocket_required");
    drop(socket);
    server.shut_down().await;
}

#[tokio::test]
async fn on_the_embedded_default_shutdown_stores_every_acknowledged_event() {
    let server = start(&[]).await;
    let Registered { lock, secret, .. } = register_lock(&server.api).await;
    let (acked, devices) = acked_while_shutting_down(server, &lock, &secret).await;
    let mut query = hse_devices::history::EventQuery {
        device_id: lock.parse().unwrap(),
        from_ms: None,
        to_ms: None,
        types: vec![],
        limit: 1000,
        cursor: None,
    };
    let mut stored = HashSet::new();
    loop {
        let page = devices.history.events(&query).await.unwrap();
        stored.extend(page.events.iter().map(|e| e.event_id));
        match page.next_cursor {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost",
        lost.len(),
        acked.len()
    );
}

/// PostgreSQL (a fresh database) and Redis (a fresh key prefix).
async fn services(options: &PgConnectOptions) -> Vec<(&'static str, String)> {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = base.rsplit_once('/').expect("a database URL");
    let database = options
        .get_database()
        .expect("sqlx::test names the database");
    let url = format!("{server}/{database}");
    let pool = PgPoolOptions::new().connect(&url).await.unwrap();
    hse_server::backends::migrate(&pool).await.unwrap();
    let redis = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    vec![
        ("HSE_DATABASE_URL", url),
        ("HSE_REDIS_URL", redis),
        ("HSE_REDIS_PREFIX", format!("hse-e2e-{}:", Uuid::now_v7())),
        ("HSE_NODE_NAME", "e2e-node".into()),
    ]
}

/// Deletes the test's Redis keys (its prefix) once it passed.
async fn forget_redis(vars: &[(&str, String)]) {
    let value = |name: &str| vars.iter().find(|(k, _)| *k == name).unwrap().1.clone();
    let client = redis::Client::open(value("HSE_REDIS_URL")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", value("HSE_REDIS_PREFIX")))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrations = false)]
async fn on_postgres_and_redis_a_lock_works_end_to_end(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let vars = services(&options).await;
    a_lock_over_tcp_http_and_grpc(&vars).await;
    forget_redis(&vars).await;
}

#[sqlx::test(migrations = false)]
async fn on_postgres_and_redis_every_acknowledged_event_is_stored_after_a_restart(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let vars = services(&options).await;
    let server = start(&vars).await;
    let Registered { lock, secret, .. } = register_lock(&server.api).await;
    let (acked, _) = acked_while_shutting_down(server, &lock, &secret).await;

    // The next start of the same node stores what the stream still holds.
    let restarted = start(&vars).await;
    let url = &vars[0].1;
    let pool = PgPoolOptions::new().connect(url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM device_events WHERE event_id = ANY($1)")
                .bind(&acked)
                .fetch_one(&pool)
                .await
                .unwrap();
        if stored as usize >= acked.len() || tokio::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored as usize, acked.len(), "acknowledged events lost");
    restarted.shut_down().await;
    forget_redis(&vars).await;
}
