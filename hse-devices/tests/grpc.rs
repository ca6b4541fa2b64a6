//! The gRPC service end to end: a device over TCP, a gRPC client that
//! subscribes (and resumes), sends a command the device answers, notifies
//! events and reads status and events.
#![cfg(feature = "grpc")]

use std::sync::Arc;
use std::time::Duration;

use hse_core::{DeviceId, Secret};
use hse_devices::breaker::{BreakerSettings, BreakerState};
use hse_devices::client::DevicesClient;
use hse_devices::commands::Connections;
use hse_devices::directory::MemoryDirectory;
use hse_devices::dlq::MemoryDeadLetters;
use hse_devices::feed::ChangeFeed;
use hse_devices::grpc::DevicesService;
use hse_devices::grpc::pb::device_stream_client::DeviceStreamClient;
use hse_devices::grpc::pb::{
    DeviceCommand, DeviceEvent, DeviceEventsRequest, DeviceStatusRequest, NotifyEventsRequest,
    SubscriptionRequest,
};
use hse_devices::ingest::Ingest;
use hse_devices::queue::MemoryQueue;
use hse_devices::session::{SessionConfig, SessionContext};
use hse_devices::state::MemoryState;
use hse_devices::writer::{BatchWriter, MemorySink, WriterConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

#[path = "grpc/refusals.rs"]
mod refusals;

struct Rig {
    device_addr: std::net::SocketAddr,
    grpc_addr: std::net::SocketAddr,
    client: DeviceStreamClient<Channel>,
    directory: Arc<MemoryDirectory>,
    sink: Arc<MemorySink>,
    service: DevicesService,
    sessions: Arc<SessionContext>,
    _stop: tokio_util::sync::DropGuard,
}

async fn rig() -> Rig {
    let stop = CancellationToken::new();
    let state = Arc::new(MemoryState::new());
    let queue = MemoryQueue::new(100_000, Some(state.clone()));
    let sink = Arc::new(MemorySink::new());
    let ingest = Ingest::new(queue.clone(), ChangeFeed::new(1000), 10_000);
    let connections = Arc::new(Connections::new());
    let directory = Arc::new(MemoryDirectory::new());
    let ctx = Arc::new(SessionContext {
        directory: directory.clone(),
        ingest: ingest.clone(),
        connections: connections.clone(),
        state: state.clone(),
        config: SessionConfig::default(),
        shutdown: stop.clone(),
    });
    let devices = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let device_addr = devices.local_addr().unwrap();
    tokio::spawn(hse_devices::tcp::run_until_stopped(
        devices,
        ctx.clone(),
        100,
    ));
    let config = WriterConfig {
        batch_wait: Duration::from_millis(5),
        ..WriterConfig::default()
    };
    let writer = BatchWriter::new(
        Arc::new(queue.consumer("w")),
        sink.clone(),
        Arc::new(MemoryDeadLetters::new()),
        config,
    );
    tokio::spawn(writer.run_until_stopped(stop.clone()));

    let service = DevicesService::new(ingest, connections, state, sink.clone());
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let incoming = futures_util::stream::unfold(grpc, |listener| async move {
        let accepted = listener.accept().await.map(|(s, _)| s);
        Some((accepted, listener))
    });
    let shutdown = stop.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.clone().into_server())
            .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await }),
    );
    let client = DeviceStreamClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();
    Rig {
        device_addr,
        grpc_addr,
        client,
        directory,
        sink,
        service,
        sessions: ctx,
        _stop: stop.drop_guard(),
    }
}

struct Device {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Device {
    async fn connect(rig: &Rig) -> (DeviceId, Self) {
        let id = DeviceId::new();
        let secret = Secret::generate().unwrap();
        rig.directory.register(id, secret.hash());
        let (r, w) = tokio::net::TcpStream::connect(rig.device_addr)
            .await
            .unwrap()
            .into_split();
        let mut d = Self {
            lines: BufReader::new(r).lines(),
            write: w,
        };
        d.send(json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":1}))
            .await;
        assert_eq!(d.recv().await["type"], "welcome");
        (id, d)
    }
    async fn send(&mut self, frame: Value) {
        self.write
            .write_all(format!("{frame}\n").as_bytes())
            .await
            .unwrap();
    }
    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

#[tokio::test]
async fn a_subscriber_gets_relevant_and_requested_events_and_can_resume() {
    let mut rig = rig().await;
    let (id, mut device) = Device::connect(&rig).await;
    let request = SubscriptionRequest {
        device_ids: vec![id.to_string()],
        event_types: vec!["temperature".into()],
        client_id: "monolith".into(),
        resume_cursor: String::new(),
    };
    let mut stream = rig
        .client
        .subscribe_to_device_changes(request.clone())
        .await
        .unwrap()
        .into_inner();
    for (seq, kind) in [(1, "humidity"), (2, "alarm"), (3, "temperature")] {
        device.send(json!({"type":"event","seq":seq,"event_type":kind,"value":seq,"metadata":{"zone":"a"}})).await;
        assert_eq!(device.recv().await["type"], "ack");
    }
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(
        (first.event_type.as_str(), first.metadata["zone"].as_str()),
        ("alarm", "a")
    );
    let second = stream.message().await.unwrap().unwrap();
    assert_eq!(
        (second.event_type.as_str(), second.value, second.has_value),
        ("temperature", 3.0, true)
    );
    drop(stream);

    let resumed = SubscriptionRequest {
        resume_cursor: first.cursor.clone(),
        ..request
    };
    let mut stream = rig
        .client
        .subscribe_to_device_changes(resumed)
        .await
        .unwrap()
        .into_inner();
    let again = stream.message().await.unwrap().unwrap();
    assert_eq!(again.event_id, second.event_id);
}

#[tokio::test]
async fn a_command_reaches_the_device_and_offline_devices_fail_fast() {
    let mut rig = rig().await;
    let (id, mut device) = Device::connect(&rig).await;
    let mut client = rig.client.clone();
    let command = DeviceCommand {
        device_id: id.to_string(),
        command_type: "unlock".into(),
        params: [("door".to_owned(), "front".to_owned())].into(),
        request_id: uuid::Uuid::now_v7().to_string(),
        timeout_ms: 5000,
    };
    let sent = tokio::spawn(async move { client.send_device_command(command).await });
    let frame = device.recv().await;
    assert_eq!(
        (
            frame["command_type"].as_str(),
            frame["params"]["door"].as_str()
        ),
        (Some("unlock"), Some("front"))
    );
    device.send(json!({"type":"command_result","request_id":frame["request_id"],"success":true,"message":"opened"})).await;
    let reply = sent.await.unwrap().unwrap().into_inner();
    assert!(reply.success);
    assert_eq!(
        (reply.message.as_str(), reply.code.as_str()),
        ("opened", "ok")
    );
    assert_eq!(reply.request_id, frame["request_id"].as_str().unwrap());

    let offline = DeviceCommand {
        device_id: DeviceId::new().to_string(),
        command_type: "reboot".into(),
        ..Default::default()
    };
    let reply = rig
        .client
        .send_device_command(offline)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.success, reply.code.as_str()),
        (false, "device_offline")
    );
}

#[tokio::test]
async fn door_code_commands_are_refused_and_never_reach_the_lock() {
    let mut rig = rig().await;
    let (id, mut device) = Device::connect(&rig).await;
    for kind in ["program_code", "remove_code", "delete_code"] {
        let raw = DeviceCommand {
            device_id: id.to_string(),
            command_type: kind.into(),
            params: [("code".to_owned(), "000000".to_owned())].into(),
            request_id: uuid::Uuid::now_v7().to_string(),
            timeout_ms: 1000,
        };
        let refused = rig.client.send_device_command(raw).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{kind}");
    }
    // The first command the lock gets is the ordinary one sent next.
    let mut client = rig.client.clone();
    let reboot = DeviceCommand {
        device_id: id.to_string(),
        command_type: "reboot".into(),
        request_id: uuid::Uuid::now_v7().to_string(),
        timeout_ms: 5000,
        ..Default::default()
    };
    let sent = tokio::spawn(async move { client.send_device_command(reboot).await });
    let frame = device.recv().await;
    assert_eq!(frame["command_type"], "reboot");
    device.send(json!({"type":"command_result","request_id":frame["request_id"],"success":true,"message":"ok"})).await;
    assert!(sent.await.unwrap().unwrap().into_inner().success);
}

#[tokio::test]
async fn status_and_events_are_read_and_notified_events_are_ingested() {
    let mut rig = rig().await;
    let (id, mut device) = Device::connect(&rig).await;
    device.send(json!({"type":"events","seq":1,"events":[
        {"event_type":"temperature","value":20.5,"unit":"C","ts_ms":chrono::Utc::now().timestamp_millis() - 1000},
        {"event_type":"door","ts_ms":chrono::Utc::now().timestamp_millis()}]})).await;
    assert_eq!(device.recv().await["type"], "ack");
    let status = rig
        .client
        .get_device_status(DeviceStatusRequest {
            device_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.status.as_str(), status.connected), ("online", true));
    assert_eq!(status.last_event.unwrap().event_type, "door");
    assert_eq!(status.last_events.len(), 2);

    let notify = NotifyEventsRequest {
        events: vec![DeviceEvent {
            device_id: id.to_string(),
            event_type: "energy".into(),
            value: 3.5,
            timestamp: chrono::Utc::now().timestamp(),
            ..Default::default()
        }],
    };
    let reply = rig
        .client
        .notify_device_events(notify)
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.success, reply.events_received), (true, 1));
    let bad = NotifyEventsRequest {
        events: vec![DeviceEvent {
            device_id: "nope".into(),
            event_type: "x".into(),
            ..Default::default()
        }],
    };
    assert_eq!(
        rig.client
            .notify_device_events(bad)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::InvalidArgument
    );

    for _ in 0..500 {
        if rig.sink.stored().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let request = DeviceEventsRequest {
        device_id: id.to_string(),
        limit: 2,
        ..Default::default()
    };
    let page = rig
        .client
        .get_device_events(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 2);
    assert!(page.events[0].timestamp_ms >= page.events[1].timestamp_ms);
    assert!(!page.next_cursor.is_empty());
    let rest = rig
        .client
        .get_device_events(DeviceEventsRequest {
            cursor: page.next_cursor,
            ..request
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.events.len(), 1);
    assert!(rest.next_cursor.is_empty());
}

/// Plays a device: sends humidity, alarm and temperature events every
/// 50 ms and answers every command with `done:<type>`.
async fn simulate(mut device: Device, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut seq = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                for kind in ["humidity", "alarm", "temperature"] {
                    seq += 1;
                    device.send(json!({"type":"event","seq":seq,"event_type":kind,"value":seq})).await;
                }
            }
            line = device.lines.next_line() => {
                let Ok(Some(line)) = line else { return };
                let frame: Value = serde_json::from_str(&line).unwrap();
                if frame["type"] == "command" {
                    let message = format!("done:{}", frame["command_type"].as_str().unwrap_or(""));
                    device.send(json!({"type":"command_result","request_id":frame["request_id"],"success":true,"message":message})).await;
                }
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs python3 with grpcio and grpcio-tools (pip install grpcio grpcio-tools); run with --ignored"]
async fn a_python_grpcio_client_generated_from_the_proto_works() {
    let rig = rig().await;
    let (id, device) = Device::connect(&rig).await;
    let stop = CancellationToken::new();
    let simulator = tokio::spawn(simulate(device, stop.clone()));
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/grpc_client.py");
    let addr = rig.grpc_addr.to_string();
    let id = id.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, proto_dir, &addr, &id])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    stop.cancel();
    let _ = simulator.await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "python client failed:\n{stdout}\n{stderr}"
    );
}

/// Serves `service` on `listener` until `stop`.
fn serve(
    service: DevicesService,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(s, _)| s);
        Some((accepted, listener))
    });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await })
            .await;
    })
}

#[tokio::test]
async fn the_client_resubscribes_from_its_last_cursor_after_the_server_restarts() {
    let rig = rig().await;
    let (id, mut device) = Device::connect(&rig).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first_stop = CancellationToken::new();
    let first = serve(
        rig.service.clone().with_shutdown(first_stop.clone()),
        listener,
        first_stop.clone(),
    );
    let client =
        DevicesClient::connect_lazy(&format!("http://{addr}"), BreakerSettings::default()).unwrap();
    let mut changes = client.subscribe(SubscriptionRequest {
        device_ids: vec![id.to_string()],
        ..Default::default()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    device
        .send(json!({"type":"event","seq":1,"event_type":"alarm","value":1}))
        .await;
    assert_eq!(device.recv().await["type"], "ack");
    let one = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(one.value, 1.0);

    first_stop.cancel();
    first.await.unwrap();
    device
        .send(json!({"type":"event","seq":2,"event_type":"alarm","value":2}))
        .await;
    assert_eq!(device.recv().await["type"], "ack");
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _second = serve(rig.service.clone(), listener, CancellationToken::new());
    device
        .send(json!({"type":"event","seq":3,"event_type":"alarm","value":3}))
        .await;
    assert_eq!(device.recv().await["type"], "ack");
    for expected in [2.0, 3.0] {
        let next = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(next.value, expected);
    }
}

#[tokio::test]
async fn the_breaker_opens_when_the_service_is_down() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let client =
        DevicesClient::connect_lazy(&format!("http://{addr}"), BreakerSettings::default()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            client
                .status(&DeviceId::new().to_string())
                .await
                .unwrap_err()
                .code(),
            tonic::Code::Unavailable
        );
    }
    assert_eq!(client.circuit(), BreakerState::Open);
    let rejected = client
        .status(&DeviceId::new().to_string())
        .await
        .unwrap_err();
    assert_eq!(rejected.message(), "circuit open");
}

/// `NotifyDeviceEvents` builds its events with the device frames'
/// constructor: what a device frame is refused for (NUL in unit or
/// metadata, metadata over 4 KiB or nested past 8 levels) is refused
/// here too, and nothing of the call is stored.
#[tokio::test]
async fn notified_events_are_refused_for_what_device_frames_are_refused_for() {
    let mut rig = rig().await;
    let device = DeviceId::new().to_string();
    let nine = format!(r#"{}1{}"#, r#"{"a":"#.repeat(9), "}".repeat(9));
    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(4 * 1024));
    let cases = [
        ("unit", "C\0".to_owned(), String::new()),
        ("metadata", String::new(), r#"{"a\u0000":1}"#.to_owned()),
        (
            "metadata",
            String::new(),
            r#"{"a":{"b":["\u0000"]}}"#.to_owned(),
        ),
        ("metadata", String::new(), nine),
        ("metadata", String::new(), big),
    ];
    for (field, unit, metadata_json) in cases {
        let good = DeviceEvent {
            device_id: device.clone(),
            event_type: "energy".into(),
            value: 1.0,
            ..Default::default()
        };
        let bad = DeviceEvent {
            unit,
            metadata_json,
            ..good.clone()
        };
        let status = rig
            .client
            .notify_device_events(NotifyEventsRequest {
                events: vec![good, bad],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rig.sink.stored().is_empty());
}
