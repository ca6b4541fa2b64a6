//! The consumer-group port ([`EventGroups`]), one behaviour suite run
//! against the in-process queue and against Redis: a module's group gets
//! every event enqueued after it registered whatever the writers do, and
//! a group that stops while the writers keep storing and trimming under
//! load loses nothing when it resumes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hse_core::DeviceId;
use hse_devices::Event;
use hse_devices::groups::{EventGroups, GroupName};
use hse_devices::queue::{EventQueue, MemoryQueue, QueueConsumer};
use hse_devices::redis::{Keys, RedisConsumer, RedisQueue};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::event;

/// One backend: the producer side, the port, and a batch writer's
/// consumer.
struct Backend {
    queue: Arc<dyn EventQueue>,
    groups: Arc<dyn EventGroups>,
    writer: Arc<dyn QueueConsumer>,
    /// Entries the backend still holds, when it can tell (Redis `XLEN`,
    /// the in-process queue's bytes).
    held: Box<dyn Fn() -> futures_util::future::BoxFuture<'static, u64> + Send + Sync>,
    redis: Option<(redis::Client, String)>,
}

fn memory() -> Backend {
    let queue = MemoryQueue::new(1_000_000, None);
    let held = queue.clone();
    Backend {
        queue: queue.clone(),
        groups: queue.clone(),
        writer: Arc::new(queue.consumer("w")),
        held: Box::new(move || {
            let bytes = held.bytes() as u64;
            Box::pin(async move { bytes })
        }),
        redis: None,
    }
}

async fn redis() -> Backend {
    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("hse-test:{}:", Uuid::new_v4());
    let keys = Keys::new(&prefix);
    let queue = Arc::new(RedisQueue::new(&client, keys.clone()).await.unwrap());
    let writer = RedisConsumer::new(&client, keys.clone(), "w")
        .await
        .unwrap();
    let conn = hse_devices::redis::connect(&client, Duration::from_secs(5))
        .await
        .unwrap();
    let stream = keys.events();
    Backend {
        queue: queue.clone(),
        groups: queue,
        writer: Arc::new(writer),
        held: Box::new(move || {
            let (mut conn, stream) = (conn.clone(), stream.clone());
            Box::pin(async move { conn.xlen(&stream).await.unwrap() })
        }),
        redis: Some((client, prefix)),
    }
}

impl Backend {
    async fn clean_up(self) {
        if let Some((client, prefix)) = self.redis {
            let mut c = hse_devices::redis::connect(&client, Duration::from_secs(5))
                .await
                .unwrap();
            let left: Vec<String> = c.keys(format!("{prefix}*")).await.unwrap();
            let _: () = c.del(left).await.unwrap();
        }
    }
}

fn group(name: &str) -> GroupName {
    GroupName::parse(name).unwrap()
}

async fn enqueue(queue: &dyn EventQueue, n: usize) -> Vec<Uuid> {
    let device = DeviceId::new();
    let events: Vec<Event> = (0..n).map(|_| event(device)).collect();
    for chunk in events.chunks(50) {
        queue.enqueue(chunk).await.unwrap();
    }
    events.iter().map(|e| e.event_id).collect()
}

/// Reads and acks until `want` distinct events were seen or nothing came
/// for 3 s; returns the events seen.
async fn drain(consumer: &dyn QueueConsumer, want: usize) -> BTreeSet<Uuid> {
    let mut seen = BTreeSet::new();
    while seen.len() < want {
        let batch = consumer.read(250, Duration::from_secs(3)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        seen.extend(batch.iter().map(|d| d.event.event_id));
        let ids: Vec<_> = batch.into_iter().map(|d| d.id).collect();
        consumer.ack(&ids).await.unwrap();
    }
    seen
}

async fn a_group_gets_every_later_event_whatever_the_writers_ack(b: Backend) {
    let before = enqueue(&*b.queue, 5).await;
    let alarms = b
        .groups
        .register_group(&group("alarms"), "a1")
        .await
        .unwrap();
    let sent = enqueue(&*b.queue, 20).await;
    let all: BTreeSet<_> = before.iter().chain(&sent).copied().collect();
    assert_eq!(drain(&*b.writer, 25).await, all, "the writers get all");
    let expected: BTreeSet<_> = sent.iter().copied().collect();
    assert_eq!(
        drain(&*alarms, 20).await,
        expected,
        "the group gets what came after it registered, after the writers acked it"
    );
    // Registering again keeps the group's place; a new group starts now.
    let again = b
        .groups
        .register_group(&group("alarms"), "a2")
        .await
        .unwrap();
    let access = b
        .groups
        .register_group(&group("access"), "x1")
        .await
        .unwrap();
    let later: BTreeSet<_> = enqueue(&*b.queue, 3).await.into_iter().collect();
    assert_eq!(drain(&*again, 3).await, later);
    assert_eq!(drain(&*access, 3).await, later);
    assert_eq!(drain(&*b.writer, 3).await, later);
    assert_eq!((b.held)().await, 0, "all groups done: nothing is held");
    b.clean_up().await;
}

async fn a_stopped_group_loses_nothing_while_the_writers_trim_under_load(b: Backend) {
    let alarms = b
        .groups
        .register_group(&group("alarms"), "a1")
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let writer = b.writer.clone();
    let stored = Arc::new(AtomicUsize::new(0));
    let writers_seen = {
        let (stop, stored) = (stop.clone(), stored.clone());
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            while !stop.is_cancelled() {
                let batch = writer.read(250, Duration::from_millis(50)).await.unwrap();
                seen.extend(batch.iter().map(|d| d.event.event_id));
                let ids: Vec<_> = batch.into_iter().map(|d| d.id).collect();
                writer.ack(&ids).await.unwrap();
                stored.store(seen.len(), Ordering::Relaxed);
            }
            seen
        })
    };
    let mut sent = enqueue(&*b.queue, 1000).await;
    // The module reads part, acks less (a crash mid-batch), and stops.
    let first = alarms.read(250, Duration::from_secs(1)).await.unwrap();
    let acked: Vec<_> = first.iter().take(150).map(|d| d.id.clone()).collect();
    alarms.ack(&acked).await.unwrap();
    drop(alarms);
    // While it is stopped the writers store, ack and trim 2,000 more.
    for _ in 0..40 {
        sent.extend(enqueue(&*b.queue, 50).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stored.load(Ordering::Relaxed) < sent.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The group stays stopped a while longer after the writers' last trim.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let all: BTreeSet<_> = sent.iter().copied().collect();
    assert_eq!(writers_seen.await.unwrap(), all, "the writers stored all");

    // Resumed under the same name: its unacked entries first, then the rest.
    let resumed = b
        .groups
        .register_group(&group("alarms"), "a1")
        .await
        .unwrap();
    let mut seen: BTreeSet<_> = first.iter().take(150).map(|d| d.event.event_id).collect();
    seen.extend(drain(&*resumed, all.len() - 150).await);
    let missing = all.difference(&seen).count();
    assert_eq!(
        missing,
        0,
        "the stopped group lost {missing} of {}",
        all.len()
    );
    assert_eq!(
        (b.held)().await,
        0,
        "once every group is done, all is trimmed"
    );
    b.clean_up().await;
}

#[tokio::test]
async fn memory_a_group_gets_every_later_event_whatever_the_writers_ack() {
    a_group_gets_every_later_event_whatever_the_writers_ack(memory()).await;
}

#[tokio::test]
async fn redis_a_group_gets_every_later_event_whatever_the_writers_ack() {
    a_group_gets_every_later_event_whatever_the_writers_ack(redis().await).await;
}

#[tokio::test]
async fn memory_a_stopped_group_loses_nothing_while_the_writers_trim_under_load() {
    a_stopped_group_loses_nothing_while_the_writers_trim_under_load(memory()).await;
}

#[tokio::test]
async fn redis_a_stopped_group_loses_nothing_while_the_writers_trim_under_load() {
    a_stopped_group_loses_nothing_while_the_writers_trim_under_load(redis().await).await;
}
