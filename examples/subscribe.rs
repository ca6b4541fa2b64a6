//! Run with: `cargo run --example subscribe`
//!
//! A service following device changes over gRPC, and resuming where it
//! left off. Every change carries a cursor; a client that comes back with
//! the last cursor it handled gets what it missed, in order, then live
//! changes (the Rust client also does this by itself after a broken
//! stream). Subscribers always get `alarm`, `state_change` and `error`,
//! plus the types they ask for.
//!
//! Without flags it starts an in-memory server, registers a door lock
//! that reports temperatures, follows three changes, goes away while the
//! lock reports three more, and resumes to get exactly those.
//!
//! Against a running server it just follows and prints, until Ctrl-C:
//! `cargo run --example subscribe -- --grpc http://127.0.0.1:50051
//! [--device ID]... [--type temperature]... [--resume CURSOR]`, sending
//! `HSE_GRPC_TOKEN` from the environment when set.

#[path = "support/devices.rs"]
mod devices;
#[path = "support/http.rs"]
mod http;
#[path = "support/line_device.rs"]
mod line_device;

use std::time::Duration;

use anyhow::Context;
use hse_devices::breaker::BreakerSettings;
use hse_devices::client::DevicesClient;
use hse_devices::grpc::pb::{DeviceChangeEvent, SubscriptionRequest};
use serde_json::json;
use tokio::sync::mpsc::Receiver;

use devices::Embedded;
use line_device::{LineDevice, register_locks};

type Changes = Receiver<Result<DeviceChangeEvent, tonic::Status>>;

fn print(change: &DeviceChangeEvent) {
    let value = if change.has_value {
        change.value.to_string()
    } else {
        "-".into()
    };
    println!(
        "cursor {:>4}  {}  {:<12} {value} {}",
        change.cursor, change.device_id, change.event_type, change.unit
    );
}

/// The next change, or an error once the stream reports one.
async fn next(changes: &mut Changes) -> anyhow::Result<DeviceChangeEvent> {
    let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .context("no change within 10 s")?
        .context("subscription ended")?;
    Ok(change?)
}

/// What `--help` prints.
const USAGE: &str = "subscribe: follow device changes over gRPC, resuming from a cursor

Without flags: starts an in-memory server, follows a door lock's changes, goes away
and resumes without missing one.

    --grpc URL          follow a running server instead (e.g. http://127.0.0.1:50051)
    --device ID         only this device (repeatable)
    --type EVENT_TYPE   also this event type besides alarm/state_change/error (repeatable)
    --resume CURSOR     continue after this cursor

ENVIRONMENT:
    HSE_GRPC_TOKEN      the server's gRPC service token, sent as a bearer token (with --grpc)";

/// `--grpc URL [--device ID]... [--type T]... [--resume CURSOR]`.
fn request_from_args() -> anyhow::Result<Option<(String, SubscriptionRequest)>> {
    let mut url = None;
    let mut request = SubscriptionRequest {
        client_id: "subscribe-example".into(),
        ..SubscriptionRequest::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--grpc" => url = Some(value),
            "--device" => request.device_ids.push(value),
            "--type" => request.event_types.push(value),
            "--resume" => request.resume_cursor = value,
            other => anyhow::bail!("unknown flag {other}; see the top of examples/subscribe.rs"),
        }
    }
    Ok(url.map(|url| (url, request)))
}

/// Follows a running server until Ctrl-C, then says how to resume.
async fn follow(url: &str, request: SubscriptionRequest) -> anyhow::Result<()> {
    let mut client = DevicesClient::connect_lazy(url, BreakerSettings::default())?;
    if let Ok(token) = std::env::var("HSE_GRPC_TOKEN") {
        client = client.with_token(&token)?;
    }
    let mut changes = client.subscribe(request);
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            change = changes.recv() => match change {
                Some(Ok(change)) => {
                    print(&change);
                    last.clone_from(&change.cursor);
                }
                Some(Err(status)) => eprintln!("gap: {}", status.message()),
                None => break,
            },
        }
    }
    println!("resume with: --resume {last}");
    Ok(())
}

/// The lock reports `n` temperatures, from `first` on.
async fn report(lock: &mut LineDevice, seq: &mut u64, first: f64, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        *seq += 1;
        let event = json!({"type": "event", "seq": *seq, "event_type": "temperature",
                           "value": first + i as f64, "unit": "C"});
        lock.send(&event).await?;
        let ack = lock.recv().await?.context("closed")?;
        anyhow::ensure!(ack["type"] == "ack", "not acknowledged: {ack}");
    }
    Ok(())
}

/// The story of the module doc, on an in-memory server.
async fn demo() -> anyhow::Result<()> {
    let server = Embedded::start().await?;
    let (id, secret) = register_locks(&server.root().await?, 1).await?.remove(0);
    let mut lock = LineDevice::connect(server.device_tcp, &id, &secret).await?;
    let client = DevicesClient::connect_lazy(
        &format!("http://{}", server.grpc),
        BreakerSettings::default(),
    )?;
    let request = SubscriptionRequest {
        device_ids: vec![id.clone()],
        event_types: vec!["temperature".into()],
        client_id: "subscribe-example".into(),
        resume_cursor: "0".into(),
    };
    let mut seq = 0;
    println!("following lock {id} from the start:");
    let mut changes = client.subscribe(request.clone());
    report(&mut lock, &mut seq, 20.0, 3).await?;
    let mut last = String::new();
    for _ in 0..3 {
        let change = next(&mut changes).await?;
        print(&change);
        last = change.cursor;
    }
    drop(changes);
    println!("away after cursor {last}; the lock reports three more meanwhile");
    report(&mut lock, &mut seq, 30.0, 3).await?;
    let resumed = SubscriptionRequest {
        resume_cursor: last,
        ..request
    };
    let mut changes = client.subscribe(resumed);
    println!("resumed:");
    for _ in 0..3 {
        print(&next(&mut changes).await?);
    }
    let status = server
        .root()
        .await?
        .get(&format!("/v1/devices/{id}/status"))
        .await?;
    println!("the lock now: {}", status["status"]);
    drop(lock);
    server.stop().await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match request_from_args()? {
        Some((url, request)) => follow(&url, request).await,
        None => demo().await,
    }
}
