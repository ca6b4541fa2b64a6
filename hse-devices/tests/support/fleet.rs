//! Shared by the protocol and Redis suites: a writer held back to a fixed
//! pace, and a device that behaves as `docs/PROTOCOL.md` asks (keeps every frame
//! until acked, resends a frame nacked `overloaded`, `unavailable` or
//! `outcome_unknown` after its `retry_after_ms`, with the same event ids).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hse_core::{DeviceId, Secret};
use hse_devices::Event;
use hse_devices::directory::MemoryDirectory;
use hse_devices::dlq::DeadLetters;
use hse_devices::error::SinkError;
use hse_devices::queue::{EventQueue, QueueConsumer};
use hse_devices::writer::{BatchWriter, EventSink, MemorySink, WriterConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;
use uuid::Uuid;

/// A sink that takes `per_batch` for every batch: a writer held back.
#[derive(Debug)]
pub(crate) struct SlowSink {
    pub(crate) inner: Arc<MemorySink>,
    pub(crate) per_batch: Duration,
}

#[async_trait]
impl EventSink for SlowSink {
    async fn store(&self, events: &[Event]) -> Result<u64, SinkError> {
        tokio::time::sleep(self.per_batch).await;
        self.inner.store(events).await
    }
}

/// What one device saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Event ids of every acked frame.
    pub(crate) acked: HashSet<Uuid>,
    /// Every nack frame.
    pub(crate) nacks: Vec<Value>,
}

/// Sends `frames` frames of `per_frame` events, one every `every` (at most
/// 32 unanswered), until all are acked; panics past `deadline`.
pub(crate) async fn run_device(
    addr: SocketAddr,
    device_id: Uuid,
    secret: &str,
    (frames, per_frame): (usize, usize),
    every: Duration,
    deadline: Duration,
) -> Seen {
    let (r, mut w) = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap()
        .into_split();
    let mut lines = BufReader::new(r).lines();
    let hello = json!({"type":"hello","device_id":device_id,"token":secret,"protocol":1});
    w.write_all(format!("{hello}\n").as_bytes()).await.unwrap();
    let welcome: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    let mut seen = Seen::default();
    let mut unanswered: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut to_resend: Vec<(Instant, Vec<Value>)> = Vec::new();
    let (mut next_seq, mut made) = (1u64, 0usize);
    let mut tick = tokio::time::interval(every);
    let give_up = Instant::now() + deadline;
    while made < frames || !unanswered.is_empty() || !to_resend.is_empty() {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) = to_resend.drain(..).partition(|(at, _)| *at <= now);
                to_resend = later;
                let mut batch: Vec<Vec<Value>> = due.into_iter().map(|(_, events)| events).collect();
                if made < frames && unanswered.len() + batch.len() < 32 {
                    made += 1;
                    batch.push((0..per_frame).map(|i| json!({
                        "event_id": Uuid::now_v7(), "event_type": "temperature",
                        "value": i as f64, "unit": "C",
                    })).collect());
                }
                let mut out = String::new();
                for events in batch {
                    out.push_str(&json!({"type":"events","seq":next_seq,"events":events}).to_string());
                    out.push('\n');
                    unanswered.insert(next_seq, events);
                    next_seq += 1;
                }
                w.write_all(out.as_bytes()).await.unwrap();
            }
            line = lines.next_line() => {
                let frame: Value = serde_json::from_str(&line.unwrap().expect("server closed")).unwrap();
                let seq = frame["seq"].as_u64().unwrap_or(0);
                match frame["type"].as_str() {
                    Some("ack") if frame["upto"] == true => {
                        let rest = unanswered.split_off(&(seq + 1));
                        for events in std::mem::replace(&mut unanswered, rest).into_values() {
                            seen.acked.extend(ids(&events));
                        }
                    }
                    Some("ack") => {
                        let events = unanswered.remove(&seq).expect("ack for an unknown frame");
                        seen.acked.extend(ids(&events));
                    }
                    Some("nack") => {
                        let events = unanswered.remove(&seq).expect("nack for an unknown frame");
                        let code = frame["code"].as_str().unwrap_or("");
                        assert!(
                            ["overloaded", "unavailable", "outcome_unknown"].contains(&code),
                            "{frame}"
                        );
                        let wait = frame["retry_after_ms"].as_u64().expect("retry_after_ms");
                        to_resend.push((Instant::now() + Duration::from_millis(wait), events));
                        seen.nacks.push(frame);
                    }
                    _ => {}
                }
            }
            () = tokio::time::sleep_until(give_up) => panic!("device not done within {deadline:?}"),
        }
    }
    seen
}

fn ids(events: &[Value]) -> impl Iterator<Item = Uuid> + '_ {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().parse().unwrap())
}

/// Samples `lag` every 25 ms until `stop`; the largest value seen.
pub(crate) async fn max_lag_until<F, Fut>(
    lag: F,
    stop: tokio_util::sync::CancellationToken,
) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let mut max = Duration::ZERO;
    while !stop.is_cancelled() {
        max = max.max(lag().await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    max
}

/// One device on the listener at `addr` (its directory `directory`) sends
/// 3,000 events as fast as it can (75 frames of 40, up to 4,000/s) while a
/// writer over `consumer` stores 50 every 100 ms (500/s); returns what the
/// device saw, the largest storage lag of `queue` sampled, and what was
/// stored once every acked event was (or after 30 s).
pub(crate) async fn held_back_run(
    addr: SocketAddr,
    directory: &MemoryDirectory,
    queue: Arc<dyn EventQueue>,
    consumer: Arc<dyn QueueConsumer>,
    dead_letters: Arc<dyn DeadLetters>,
) -> (Seen, Duration, Vec<Event>) {
    let stored = Arc::new(MemorySink::new());
    let sink = Arc::new(SlowSink {
        inner: stored.clone(),
        per_batch: Duration::from_millis(100),
    });
    let config = WriterConfig {
        batch_size: 50,
        batch_wait: Duration::from_millis(5),
        concurrency: 1,
        ..WriterConfig::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = BatchWriter::new(consumer, sink, dead_letters, config);
    tokio::spawn(writer.run_until_stopped(stop.clone()));
    let sampling = tokio_util::sync::CancellationToken::new();
    let lag = move || {
        let queue = queue.clone();
        async move { queue.storage_lag().await.unwrap().oldest_untaken }
    };
    let sampler = tokio::spawn(max_lag_until(lag, sampling.clone()));
    let (id, secret) = (DeviceId::new(), Secret::generate().unwrap());
    directory.register(id, secret.hash());
    let seen = run_device(
        addr,
        id.as_uuid(),
        secret.expose(),
        (75, 40),
        Duration::from_millis(10),
        Duration::from_secs(60),
    )
    .await;
    for _ in 0..600 {
        if stored.stored().len() >= seen.acked.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sampling.cancel();
    let max_lag = sampler.await.unwrap();
    stop.cancel();
    (seen, max_lag, stored.stored())
}
