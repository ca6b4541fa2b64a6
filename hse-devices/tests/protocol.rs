//! Black-box tests of the device protocol: a real TCP listener on port 0,
//! in-memory directory, queue and state, and a device that talks JSON lines.

use std::sync::Arc;
use std::time::Duration;

use hse_core::{DeviceId, Secret};
use hse_devices::commands::{Command, CommandError, Connections};
use hse_devices::directory::MemoryDirectory;
use hse_devices::feed::ChangeFeed;
use hse_devices::ingest::Ingest;
use hse_devices::queue::{MemoryQueue, QueueConsumer};
use hse_devices::session::{SessionConfig, SessionContext};
use hse_devices::state::{MemoryState, StateStore};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

#[path = "protocol/backpressure.rs"]
mod backpressure;
#[path = "protocol/edge.rs"]
mod edge;
#[path = "support/fleet.rs"]
mod fleet;

struct Node {
    addr: std::net::SocketAddr,
    queue: Arc<MemoryQueue>,
    state: Arc<MemoryState>,
    connections: Arc<Connections>,
    directory: Arc<MemoryDirectory>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

async fn node_with(config: SessionConfig, high_water: u64) -> Node {
    let state = Arc::new(MemoryState::new());
    let queue = MemoryQueue::new(100_000, Some(Arc::clone(&state)));
    let directory = Arc::new(MemoryDirectory::new());
    let connections = Arc::new(Connections::new());
    let shutdown = CancellationToken::new();
    let ctx = Arc::new(SessionContext {
        directory: directory.clone(),
        ingest: Ingest::new(queue.clone(), ChangeFeed::new(1000), high_water),
        connections: Arc::clone(&connections),
        state: state.clone(),
        config,
        shutdown: shutdown.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(hse_devices::tcp::run_until_stopped(listener, ctx, 100));
    Node {
        addr,
        queue,
        state,
        connections,
        directory,
        shutdown,
        server,
    }
}

async fn node() -> Node {
    node_with(SessionConfig::default(), 10_000).await
}

impl Node {
    fn device(&self) -> (DeviceId, Secret) {
        let id = DeviceId::new();
        let secret = Secret::generate().unwrap();
        self.directory.register(id, secret.hash());
        (id, secret)
    }

    async fn connected(&self) -> (DeviceId, Device) {
        let (id, secret) = self.device();
        let mut d = Device::connect(self.addr).await;
        d.send(&json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":1}))
            .await;
        let welcome = d.recv().await.unwrap();
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (id, d)
    }
}

struct Device {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Device {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            lines: BufReader::new(r).lines(),
            write: w,
        }
    }
    async fn send_raw(&mut self, raw: &[u8]) {
        let _ = self.write.write_all(raw).await;
    }
    async fn send(&mut self, frame: &Value) {
        self.send_raw(format!("{frame}\n").as_bytes()).await;
    }
    /// The next frame, or `None` once the server closed the connection.
    async fn recv(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("no frame within 10 s")
            .ok()??;
        Some(serde_json::from_str(&line).unwrap())
    }
    async fn expect_closed(&mut self) {
        assert!(self.recv().await.is_none(), "connection still open");
    }
}

/// A device on an in-process WebSocket session of `node` (text messages
/// through channels, as the server's handler passes them), past `welcome`.
struct TextDevice {
    to_server: tokio::sync::mpsc::Sender<String>,
    from_server: tokio::sync::mpsc::Receiver<String>,
    session: tokio::task::JoinHandle<()>,
}

impl TextDevice {
    async fn connect(node: &Node) -> Self {
        use hse_devices::session::{Peer, run_session};
        use hse_devices::transport::{ChannelWriter, TextFrames};

        let (id, secret) = node.device();
        let ctx = Arc::new(SessionContext {
            directory: node.directory.clone(),
            ingest: Ingest::new(node.queue.clone(), ChangeFeed::new(10), 10_000),
            connections: Arc::clone(&node.connections),
            state: node.state.clone(),
            config: SessionConfig::default(),
            shutdown: CancellationToken::new(),
        });
        let (to_server, inbound) = tokio::sync::mpsc::channel::<String>(8);
        let (outbound, from_server) = tokio::sync::mpsc::channel::<String>(8);
        let frames = futures_util::stream::unfold(inbound, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        });
        let peer = Peer {
            protocol: "websocket",
            remote_address: "127.0.0.1:1".into(),
        };
        let session = tokio::spawn(run_session(
            ctx,
            peer,
            TextFrames::new(Box::pin(frames)),
            ChannelWriter::new(outbound),
        ));
        let mut device = Self {
            to_server,
            from_server,
            session,
        };
        let hello = json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":1});
        device.send(hello.to_string()).await;
        assert_eq!(device.recv().await["type"], "welcome");
        device
    }

    async fn send(&self, text: String) {
        self.to_server.send(text).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.from_server.recv().await.unwrap()).unwrap()
    }
}

fn event(seq: u64, kind: &str) -> Value {
    json!({"type":"event","seq":seq,"event_id":uuid::Uuid::now_v7(),"event_type":kind,"value":seq as f64,"unit":"C"})
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_device_is_unauthorized_alike() {
    let node = node().await;
    let (id, _) = node.device();
    for device_id in [id, DeviceId::new()] {
        let mut d = Device::connect(node.addr).await;
        d.send(&json!({"type":"hello","device_id":device_id,"token":"guess","protocol":1}))
            .await;
        let err = d.recv().await.unwrap();
        assert_eq!(
            (err["type"].as_str(), err["code"].as_str()),
            (Some("error"), Some("unauthorized"))
        );
        d.expect_closed().await;
    }
}

#[tokio::test]
async fn the_first_frame_must_be_hello() {
    let node = node().await;
    let mut d = Device::connect(node.addr).await;
    d.send(&json!({"type":"ping"})).await;
    assert_eq!(d.recv().await.unwrap()["code"], "hello_required");
    d.expect_closed().await;
    let mut d = Device::connect(node.addr).await;
    let (id, secret) = node.device();
    d.send(&json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":2}))
        .await;
    assert_eq!(d.recv().await.unwrap()["code"], "unsupported_protocol");
}

#[tokio::test]
async fn events_are_acked_after_enqueue_and_update_state() {
    let node = node().await;
    let (id, mut d) = node.connected().await;
    d.send(&event(1, "temperature")).await;
    assert_eq!(d.recv().await.unwrap(), json!({"type":"ack","seq":1}));
    let consumer = node.queue.consumer("test");
    let got = consumer.read(10, Duration::ZERO).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.device_id, id);
    assert_eq!(got[0].event.source.as_deref(), Some("tcp"));
    let state = node.state.get(id).await.unwrap().unwrap();
    assert!(state.connection.connected);
    assert_eq!(state.last_events["temperature"].value, Some(1.0));
    assert_eq!(
        node.directory.status(id),
        Some(hse_core::model::DeviceStatus::Online)
    );
}

#[tokio::test]
async fn many_frames_are_all_acked_in_order_possibly_in_batches() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    let mut batch = String::new();
    for seq in 1..=500 {
        batch.push_str(&format!("{}\n", event(seq, "t")));
    }
    d.send_raw(batch.as_bytes()).await;
    let mut acked = 0;
    while acked < 500 {
        let ack = d.recv().await.unwrap();
        assert_eq!(ack["type"], "ack");
        let seq = ack["seq"].as_u64().unwrap();
        assert!(seq > acked);
        if ack.get("upto").is_none() {
            assert_eq!(seq, acked + 1);
        }
        acked = seq;
    }
    assert_eq!(
        node.queue
            .consumer("c")
            .read(1000, Duration::ZERO)
            .await
            .unwrap()
            .len(),
        500
    );
}

#[tokio::test]
async fn invalid_events_are_nacked_in_order_and_nothing_of_them_is_enqueued() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    d.send(&event(1, "ok")).await;
    d.send(&json!({"type":"event","seq":2,"event_type":"BAD"}))
        .await;
    d.send(&json!({"type":"event","seq":3,"event_type":"t","ts_ms":0}))
        .await;
    d.send(&event(3, "dup_seq")).await;
    assert_eq!(d.recv().await.unwrap(), json!({"type":"ack","seq":1}));
    let nack = d.recv().await.unwrap();
    assert_eq!(
        (
            nack["type"].as_str(),
            nack["seq"].as_u64(),
            nack["code"].as_str()
        ),
        (Some("nack"), Some(2), Some("invalid"))
    );
    assert_eq!(d.recv().await.unwrap()["code"], "out_of_range");
    let dup = d.recv().await.unwrap();
    assert_eq!(
        (dup["seq"].as_u64(), dup["code"].as_str()),
        (Some(3), Some("invalid"))
    );
    assert_eq!(
        node.queue
            .consumer("c")
            .read(10, Duration::ZERO)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn ping_gets_pong() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    d.send(&json!({"type":"ping"})).await;
    let pong = d.recv().await.unwrap();
    assert_eq!(pong["type"], "pong");
    assert!(pong["server_time_ms"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    let mut big = vec![b'x'; 260 * 1024];
    big.push(b'\n');
    d.send_raw(&big).await;
    assert_eq!(d.recv().await.unwrap()["code"], "frame_too_large");
    d.expect_closed().await;
}

#[tokio::test]
async fn ten_bad_frames_in_a_row_close_the_connection_but_good_ones_reset_the_count() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    for _ in 0..9 {
        d.send_raw(b"garbage\n").await;
        assert_eq!(d.recv().await.unwrap()["code"], "malformed");
    }
    d.send(&json!({"type":"ping"})).await;
    assert_eq!(d.recv().await.unwrap()["type"], "pong");
    for i in 0..10 {
        d.send(&json!({"type":"teleport"})).await;
        assert_eq!(d.recv().await.unwrap()["code"], "unknown_type", "frame {i}");
    }
    assert_eq!(d.recv().await.unwrap()["code"], "too_many_errors");
    d.expect_closed().await;
}

#[tokio::test]
async fn a_newer_connection_replaces_the_older() {
    let node = node().await;
    let (id, secret) = node.device();
    let mut old = Device::connect(node.addr).await;
    let hello = json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":1});
    old.send(&hello).await;
    assert_eq!(old.recv().await.unwrap()["type"], "welcome");
    let mut new = Device::connect(node.addr).await;
    new.send(&hello).await;
    assert_eq!(new.recv().await.unwrap()["type"], "welcome");
    assert_eq!(old.recv().await.unwrap()["code"], "replaced");
    old.expect_closed().await;
    new.send(&event(1, "t")).await;
    assert_eq!(new.recv().await.unwrap()["type"], "ack");
    assert!(node.connections.is_connected(id));
    assert!(
        node.state
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .connection
            .connected
    );
}

#[tokio::test]
async fn commands_reach_the_device_and_its_result_comes_back() {
    let node = node().await;
    let (id, mut d) = node.connected().await;
    let connections = Arc::clone(&node.connections);
    let request_id = uuid::Uuid::now_v7();
    let mut params = serde_json::Map::new();
    params.insert("code".into(), json!("482913"));
    let command = Command {
        request_id,
        command_type: "program_code".into(),
        params,
    };
    let sent =
        tokio::spawn(async move { connections.send(id, command, Duration::from_secs(5)).await });
    let frame = d.recv().await.unwrap();
    assert_eq!(frame["type"], "command");
    assert_eq!(frame["command_type"], "program_code");
    assert_eq!(frame["params"]["code"], "482913");
    d.send(&json!({"type":"command_result","request_id":frame["request_id"],"success":true,"message":"ok"})).await;
    let result = sent.await.unwrap().unwrap();
    assert!(result.success);
    assert_eq!(result.request_id, request_id);

    let silent = Command {
        request_id: uuid::Uuid::now_v7(),
        command_type: "reboot".into(),
        params: Default::default(),
    };
    let err = node
        .connections
        .send(id, silent, Duration::from_millis(100))
        .await;
    assert_eq!(err.unwrap_err(), CommandError::Timeout);
    let offline = Command {
        request_id: uuid::Uuid::now_v7(),
        command_type: "unlock".into(),
        params: Default::default(),
    };
    let err = node
        .connections
        .send(DeviceId::new(), offline, Duration::from_secs(5))
        .await;
    assert_eq!(err.unwrap_err(), CommandError::DeviceOffline);
}

#[tokio::test]
async fn a_silent_device_is_marked_offline() {
    let config = SessionConfig {
        heartbeat: Duration::from_millis(100),
        ..SessionConfig::default()
    };
    let node = node_with(config, 10_000).await;
    let (id, mut d) = node.connected().await;
    d.expect_closed().await;
    let state = node.state.get(id).await.unwrap().unwrap();
    assert!(!state.connection.connected);
    assert_eq!(
        node.directory.status(id),
        Some(hse_core::model::DeviceStatus::Offline)
    );
    assert!(!node.connections.is_connected(id));
}

#[tokio::test]
async fn past_the_high_water_mark_events_are_nacked_overloaded() {
    let node = node_with(SessionConfig::default(), 2).await;
    let (_, mut d) = node.connected().await;
    for seq in 1..=3 {
        d.send(&event(seq, "t")).await;
    }
    let mut codes = Vec::new();
    for _ in 0..3 {
        let f = d.recv().await.unwrap();
        codes.push(
            f.get("code")
                .and_then(Value::as_str)
                .unwrap_or("ack")
                .to_owned(),
        );
    }
    assert!(codes.iter().any(|c| c == "overloaded"), "{codes:?}");
}

#[tokio::test]
async fn shutdown_tells_devices_and_waits_for_sessions() {
    let node = node().await;
    let (_, mut d) = node.connected().await;
    d.send(&event(1, "t")).await;
    assert_eq!(d.recv().await.unwrap()["type"], "ack");
    node.shutdown.cancel();
    assert_eq!(d.recv().await.unwrap()["code"], "shutting_down");
    d.expect_closed().await;
    tokio::time::timeout(Duration::from_secs(5), node.server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_websocket_transport_runs_the_same_session() {
    let node = node().await;
    let mut d = TextDevice::connect(&node).await;
    d.send(event(1, "t").to_string()).await;
    assert_eq!(d.recv().await, json!({"type":"ack","seq":1}));
    d.send("x".repeat(260 * 1024)).await;
    assert_eq!(d.recv().await["code"], "frame_too_large");
    d.session.await.unwrap();
    let delivered = node
        .queue
        .consumer("c")
        .read(10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(delivered[0].event.source.as_deref(), Some("websocket"));
}
