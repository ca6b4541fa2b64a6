//! Batch writer tests on the in-process queue, sink and dead letters.

use std::sync::Arc;
use std::time::Duration;

use hse_core::DeviceId;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::dlq::{DeadLetters, MemoryDeadLetters, replay};
use crate::error::QueueError;
use crate::model::EventType;
use crate::queue::{EventQueue, MemoryQueue};

fn event(kind: &str) -> Event {
    Event {
        event_id: uuid::Uuid::now_v7(),
        device_id: DeviceId::new(),
        ts_ms: 1,
        event_type: EventType::parse(kind).unwrap(),
        value: Some(1.0),
        unit: None,
        metadata: None,
        source: None,
    }
}

fn fast() -> WriterConfig {
    WriterConfig {
        batch_size: 64,
        batch_wait: Duration::from_millis(5),
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        janitor_interval: Duration::from_millis(20),
        claim_idle: Duration::from_millis(50),
        dlq_interval: Duration::from_millis(5),
        dlq: DlqPolicy {
            base: Duration::from_millis(2),
            max_tries: 5,
        },
        concurrency: 2,
    }
}

struct Rig {
    queue: Arc<MemoryQueue>,
    sink: Arc<MemorySink>,
    dlq: Arc<MemoryDeadLetters>,
}

impl Rig {
    fn new() -> Self {
        Self {
            queue: MemoryQueue::new(1_000_000, None),
            sink: Arc::new(MemorySink::new()),
            dlq: Arc::new(MemoryDeadLetters::new()),
        }
    }

    fn spawn(
        &self,
        name: &str,
        config: WriterConfig,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let writer = BatchWriter::new(
            Arc::new(self.queue.consumer(name)),
            self.sink.clone(),
            self.dlq.clone(),
            config,
        );
        let stop = CancellationToken::new();
        (stop.clone(), tokio::spawn(writer.run_until_stopped(stop)))
    }

    async fn settle(&self, stored: usize) {
        for _ in 0..2000 {
            if self.sink.stored().len() >= stored && self.queue.backlog() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!(
            "not settled: {} stored, {} queued",
            self.sink.stored().len(),
            self.queue.backlog()
        );
    }
}

#[tokio::test]
async fn every_event_is_stored_once_and_acked() {
    let rig = Rig::new();
    let events: Vec<_> = (0..500).map(|_| event("t")).collect();
    rig.queue.enqueue(&events).await.unwrap();
    rig.queue.enqueue(&events[..100]).await.unwrap();
    let (stop, task) = rig.spawn("w", fast());
    rig.settle(500).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(rig.sink.stored().len(), 500);
}

#[tokio::test]
async fn transient_failures_are_retried_and_never_dead_lettered() {
    let rig = Rig::new();
    rig.sink.fail_transiently(20);
    rig.queue.enqueue(&[event("t"), event("u")]).await.unwrap();
    let (stop, task) = rig.spawn("w", fast());
    rig.settle(2).await;
    stop.cancel();
    task.await.unwrap();
    assert!(rig.dlq.list(false, 10).await.unwrap().is_empty());
    assert!(rig.dlq.list(true, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_poison_event_is_isolated_retried_made_permanent_and_replayed_once() {
    let rig = Rig::new();
    rig.sink.poison(Some("poison"));
    let mut events: Vec<_> = (0..99).map(|_| event("t")).collect();
    events.insert(37, event("poison"));
    rig.queue.enqueue(&events).await.unwrap();
    let (stop, task) = rig.spawn("w", fast());
    rig.settle(99).await;
    let mut permanent = Vec::new();
    for _ in 0..500 {
        permanent = rig.dlq.list(true, 10).await.unwrap();
        if !permanent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert_eq!(permanent.len(), 1);
    assert_eq!(permanent[0].tries, 5);
    assert_eq!(permanent[0].event.event_type.as_str(), "poison");
    assert_eq!(rig.sink.stored().len(), 99);

    rig.sink.poison(None);
    assert!(
        replay(&*rig.dlq, &*rig.sink, &permanent[0].id)
            .await
            .unwrap()
    );
    assert!(
        !replay(&*rig.dlq, &*rig.sink, &permanent[0].id)
            .await
            .unwrap()
    );
    assert_eq!(rig.sink.stored().len(), 100);
    assert!(rig.dlq.list(true, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_writer_aborted_at_random_points_loses_and_duplicates_nothing() {
    let rig = Rig::new();
    let events: Vec<_> = (0..5000).map(|_| event("t")).collect();
    for chunk in events.chunks(100) {
        rig.queue.enqueue(chunk).await.unwrap();
    }
    for round in 0..15u64 {
        let (_, task) = rig.spawn("w", fast());
        tokio::time::sleep(Duration::from_micros(300 + round * 137 % 900)).await;
        task.abort();
        let _ = task.await;
    }
    let (stop, task) = rig.spawn("w", fast());
    rig.settle(5000).await;
    stop.cancel();
    task.await.unwrap();
    let mut ids: Vec<_> = rig.sink.stored().iter().map(|e| e.event_id).collect();
    ids.sort();
    let mut expected: Vec<_> = events.iter().map(|e| e.event_id).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(rig.queue.pending_len(), 0);
}

#[tokio::test]
async fn the_janitor_takes_over_a_dead_consumers_entries() {
    let rig = Rig::new();
    rig.queue.enqueue(&[event("t"), event("t")]).await.unwrap();
    let dead = rig.queue.consumer("dead");
    assert_eq!(dead.read(10, Duration::ZERO).await.unwrap().len(), 2);
    let (stop, task) = rig.spawn("alive", fast());
    rig.settle(2).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(rig.queue.pending_len(), 0);
}

/// A consumer that is handed its entries at once and answers a while
/// later, as a blocking Redis read whose reply is still on its way.
#[derive(Debug)]
struct LateAnswer(crate::queue::MemoryConsumer);

#[async_trait]
impl QueueConsumer for LateAnswer {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let handed = self.0.read(max, wait).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(handed)
    }

    async fn ack(&self, ids: &[DeliveryId]) -> Result<(), QueueError> {
        self.0.ack(ids).await
    }

    async fn reclaim(&self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>, QueueError> {
        self.0.reclaim(min_idle, max).await
    }
}

#[tokio::test]
async fn a_stop_during_a_read_stores_what_the_read_was_handed() {
    let rig = Rig::new();
    let writer = BatchWriter::new(
        Arc::new(LateAnswer(rig.queue.consumer("w"))),
        rig.sink.clone(),
        rig.dlq.clone(),
        fast(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run_until_stopped(stop.clone()));
    let events: Vec<_> = (0..10).map(|_| event("t")).collect();
    rig.queue.enqueue(&events).await.unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(rig.sink.stored().len(), 10, "stored before stopping");
    assert_eq!(rig.queue.backlog(), 0, "nothing left pending");
}
