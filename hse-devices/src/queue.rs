//! The ingest queue: the durable hand-off between sessions and the batch
//! writer.
//!
//! A session acks a device only after [`EventQueue::enqueue`] returned, so
//! an adapter must return only once the events are durable (Redis: the
//! `XADD` was answered; in-process: they are in memory, which is as durable
//! as the embedded mode gets). The batch writer consumes through
//! [`QueueConsumer`]: its own pending entries first, then new ones, and acks
//! (and deletes) entries only after they are stored. Entries of a consumer
//! that died are reclaimed with [`QueueConsumer::reclaim`].
//!
//! Modules other than the writer follow the same entries as consumer
//! groups of their own ([`EventGroups`]).
//!
//! Adapters: [`MemoryQueue`] here, `RedisQueue` in `redis`
//! (feature `redis`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::QueueError;
use crate::groups::{EventGroups, GroupName, WRITERS_GROUP};
use crate::model::Event;
use crate::state::MemoryState;

/// The queue's id of one delivered entry, used to ack it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(pub String);

/// One entry handed to a consumer.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Ack with this.
    pub id: DeliveryId,
    /// The event.
    pub event: Event,
}

/// The producer side: sessions and other protocol adapters enqueue here.
#[async_trait]
pub trait EventQueue: Send + Sync + fmt::Debug {
    /// Durably enqueues the events (in order) and updates the devices'
    /// current state; returns once they survive a crash of this process.
    async fn enqueue(&self, events: &[Event]) -> Result<(), QueueError>;
    /// Entries enqueued and not yet acked (last known value; cheap).
    fn backlog(&self) -> u64;
    /// How far storage lags behind now. May cost a round trip to the
    /// backend; [`Ingest`](crate::ingest::Ingest) caches it.
    async fn storage_lag(&self) -> Result<LagSample, QueueError>;
}

/// One measurement of the storage lag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LagSample {
    /// Age of the oldest entry no consumer has taken yet (zero when none).
    pub oldest_untaken: Duration,
    /// Entries no consumer has taken yet, when the backend can tell.
    pub untaken: Option<u64>,
    /// Entries taken by consumers since some fixed origin (a counter), when
    /// the backend can tell.
    pub taken: Option<u64>,
}

/// The consumer side, used by the batch writer.
#[async_trait]
pub trait QueueConsumer: Send + Sync + fmt::Debug {
    /// Up to `max` entries: this consumer's own unacked entries first (after
    /// a restart), then new ones, waiting up to `wait` when there are none.
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;
    /// Acknowledges and deletes stored entries.
    async fn ack(&self, ids: &[DeliveryId]) -> Result<(), QueueError>;
    /// Takes over up to `max` entries that other consumers have held
    /// unacked for longer than `min_idle`.
    async fn reclaim(&self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>, QueueError>;
}

/// In-process queue: the embedded default. Bounded by `capacity` entries
/// and by `max_bytes` of events ([`Event::footprint`]), whichever is
/// reached first; past either, enqueues fail with [`QueueError::Full`].
///
/// Each consumer group ([`EventGroups`]) holds its own copy of every entry
/// enqueued after it was registered until it acks it; the bounds count
/// every group's entries, so a group that stops reading for long enough
/// makes enqueues fail rather than lose its entries.
#[derive(Debug)]
pub struct MemoryQueue {
    inner: Mutex<Entries>,
    notify: Notify,
    capacity: usize,
    max_bytes: usize,
    state: Option<Arc<MemoryState>>,
    /// This queue, for the consumers [`EventGroups::register_group`] makes.
    me: Weak<MemoryQueue>,
}

#[derive(Debug, Default)]
struct Entries {
    next_id: u64,
    /// Every consumer group's entries by name; the writers' always.
    groups: BTreeMap<String, Group>,
    /// The footprint of every entry each group holds.
    bytes: usize,
}

impl Entries {
    fn writers(&self) -> Option<&Group> {
        self.groups.get(WRITERS_GROUP)
    }
}

/// What one consumer group holds.
#[derive(Debug, Default)]
struct Group {
    /// Entries no consumer has taken, oldest first, with their enqueue time.
    ready: VecDeque<(u64, Instant, Event)>,
    pending: BTreeMap<u64, Pending>,
    /// Entries consumers have taken from `ready`, ever.
    taken: u64,
}

impl Group {
    fn held(&self) -> usize {
        self.ready.len() + self.pending.len()
    }
}

#[derive(Debug)]
struct Pending {
    event: Event,
    owner: String,
    since: Instant,
}

/// The in-process queue's default memory bound.
pub const DEFAULT_MEMORY_QUEUE_BYTES: usize = 256 * 1024 * 1024;

impl MemoryQueue {
    /// A queue holding at most `capacity` unacked entries; when `state` is
    /// given, enqueues update it (as the Redis adapter does in its round
    /// trip).
    /// The memory bound is [`DEFAULT_MEMORY_QUEUE_BYTES`].
    #[must_use]
    pub fn new(capacity: usize, state: Option<Arc<MemoryState>>) -> Arc<Self> {
        Self::bounded(capacity, DEFAULT_MEMORY_QUEUE_BYTES, state)
    }

    /// A queue holding at most `capacity` unacked entries and `max_bytes`
    /// of events.
    #[must_use]
    pub fn bounded(
        capacity: usize,
        max_bytes: usize,
        state: Option<Arc<MemoryState>>,
    ) -> Arc<Self> {
        let mut entries = Entries::default();
        entries
            .groups
            .insert(WRITERS_GROUP.to_owned(), Group::default());
        Arc::new_cyclic(|me| Self {
            inner: Mutex::new(entries),
            notify: Notify::new(),
            capacity,
            max_bytes,
            state,
            me: me.clone(),
        })
    }

    /// The footprint of the entries held now (see [`Event::footprint`]).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// A consumer named `name` in the writers' group; a consumer of the
    /// same name after a restart gets the unacked entries of the previous
    /// one first.
    #[must_use]
    pub fn consumer(self: &Arc<Self>, name: &str) -> MemoryConsumer {
        self.consumer_in(WRITERS_GROUP, name)
    }

    fn consumer_in(self: &Arc<Self>, group: &str, name: &str) -> MemoryConsumer {
        MemoryConsumer {
            queue: Arc::clone(self),
            group: group.to_owned(),
            name: name.to_owned(),
            own_cursor: Mutex::new(Some(0)),
        }
    }

    /// Entries delivered to the writers and not yet acked.
    #[must_use]
    pub fn pending_len(&self) -> usize {
        self.lock().writers().map_or(0, |g| g.pending.len())
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn enqueue(&self, events: &[Event]) -> Result<(), QueueError> {
        {
            let mut entries = self.lock();
            let copies = entries.groups.len();
            let size: usize = events.iter().map(Event::footprint).sum::<usize>() * copies;
            let fullest = entries.groups.values().map(Group::held).max();
            if fullest.unwrap_or(0) + events.len() > self.capacity
                || entries.bytes + size > self.max_bytes
            {
                return Err(QueueError::Full);
            }
            entries.bytes += size;
            let now = Instant::now();
            let first = entries.next_id + 1;
            entries.next_id += events.len() as u64;
            for group in entries.groups.values_mut() {
                let ids = first..;
                group
                    .ready
                    .extend(ids.zip(events).map(|(id, e)| (id, now, e.clone())));
            }
        }
        self.notify.notify_waiters();
        if let Some(state) = &self.state {
            state.record_events(events);
        }
        Ok(())
    }

    fn backlog(&self) -> u64 {
        self.lock().writers().map_or(0, |g| g.held() as u64)
    }

    async fn storage_lag(&self) -> Result<LagSample, QueueError> {
        let entries = self.lock();
        let Some(writers) = entries.writers() else {
            return Ok(LagSample::default());
        };
        Ok(LagSample {
            oldest_untaken: writers
                .ready
                .front()
                .map_or(Duration::ZERO, |(_, at, _)| at.elapsed()),
            untaken: Some(writers.ready.len() as u64),
            taken: Some(writers.taken),
        })
    }
}

#[async_trait]
impl EventGroups for MemoryQueue {
    async fn register_group(
        &self,
        group: &GroupName,
        consumer: &str,
    ) -> Result<Arc<dyn QueueConsumer>, QueueError> {
        let queue = self
            .me
            .upgrade()
            .ok_or_else(|| QueueError::Unavailable("the queue is gone".to_owned()))?;
        self.lock()
            .groups
            .entry(group.as_str().to_owned())
            .or_default();
        Ok(Arc::new(queue.consumer_in(group.as_str(), consumer)))
    }
}

/// A named consumer of one group of a [`MemoryQueue`].
#[derive(Debug)]
pub struct MemoryConsumer {
    queue: Arc<MemoryQueue>,
    group: String,
    name: String,
    /// Where the scan of this consumer's own pending entries stands;
    /// `None` once it is done.
    own_cursor: Mutex<Option<u64>>,
}

impl MemoryConsumer {
    /// Runs `f` on this consumer's group (every group is registered
    /// before its consumers exist, and none is removed).
    fn with_group<T: Default>(&self, f: impl FnOnce(&mut Group) -> T) -> T {
        self.queue
            .lock()
            .groups
            .get_mut(&self.group)
            .map(f)
            .unwrap_or_default()
    }

    fn own_pending(&self, after: u64, max: usize) -> Vec<Delivery> {
        self.with_group(|group| {
            group
                .pending
                .range(after + 1..)
                .filter(|(_, p)| p.owner == self.name)
                .take(max)
                .map(|(id, p)| delivery(*id, &p.event))
                .collect()
        })
    }

    fn take_ready(&self, max: usize) -> Vec<Delivery> {
        self.with_group(|group| {
            let n = max.min(group.ready.len());
            let taken: Vec<_> = group.ready.drain(..n).collect();
            group.taken += n as u64;
            let now = Instant::now();
            taken
                .into_iter()
                .map(|(id, _, event)| {
                    let out = delivery(id, &event);
                    let owner = self.name.clone();
                    group.pending.insert(
                        id,
                        Pending {
                            event,
                            owner,
                            since: now,
                        },
                    );
                    out
                })
                .collect()
        })
    }
}

fn delivery(id: u64, event: &Event) -> Delivery {
    Delivery {
        id: DeliveryId(id.to_string()),
        event: event.clone(),
    }
}

#[async_trait]
impl QueueConsumer for MemoryConsumer {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let cursor = *self
            .own_cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(after) = cursor {
            let own = self.own_pending(after, max);
            let next = own.last().and_then(|d| d.id.0.parse().ok());
            *self
                .own_cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = next;
            if !own.is_empty() {
                return Ok(own);
            }
        }
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.queue.notify.notified();
            let taken = self.take_ready(max);
            if !taken.is_empty() {
                return Ok(taken);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, ids: &[DeliveryId]) -> Result<(), QueueError> {
        let mut entries = self.queue.lock();
        let Some(group) = entries.groups.get_mut(&self.group) else {
            return Ok(());
        };
        let freed: usize = ids
            .iter()
            .filter_map(|id| id.0.parse::<u64>().ok())
            .filter_map(|n| group.pending.remove(&n))
            .map(|done| done.event.footprint())
            .sum();
        entries.bytes = entries.bytes.saturating_sub(freed);
        Ok(())
    }

    async fn reclaim(&self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let now = Instant::now();
        Ok(self.with_group(|group| {
            let mut out = Vec::new();
            for (id, pending) in &mut group.pending {
                if out.len() >= max {
                    break;
                }
                if pending.owner != self.name && now.duration_since(pending.since) >= min_idle {
                    pending.owner.clone_from(&self.name);
                    pending.since = now;
                    out.push(delivery(*id, &pending.event));
                }
            }
            out
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;
    use hse_core::DeviceId;

    fn event(n: i64) -> Event {
        Event {
            event_id: uuid::Uuid::now_v7(),
            device_id: DeviceId::new(),
            ts_ms: n,
            event_type: EventType::parse("t").unwrap(),
            value: Some(n as f64),
            unit: None,
            metadata: None,
            source: None,
        }
    }

    #[tokio::test]
    async fn entries_stay_pending_until_acked_and_return_to_a_restarted_consumer() {
        let q = MemoryQueue::new(100, None);
        q.enqueue(&[event(1), event(2)]).await.unwrap();
        let first = q.consumer("w1");
        let got = first.read(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 2);
        first.ack(&[got[0].id.clone()]).await.unwrap();
        drop(first);
        let again = q.consumer("w1");
        let redelivered = again.read(10, Duration::ZERO).await.unwrap();
        assert_eq!(redelivered.len(), 1);
        assert_eq!(redelivered[0].event.ts_ms, 2);
        again.ack(&[redelivered[0].id.clone()]).await.unwrap();
        assert!(again.read(10, Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(q.backlog(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_another_consumer_reclaims_idle_entries() {
        let q = MemoryQueue::new(2, None);
        q.enqueue(&[event(1), event(2)]).await.unwrap();
        assert!(matches!(
            q.enqueue(&[event(3)]).await,
            Err(QueueError::Full)
        ));
        let dead = q.consumer("dead");
        assert_eq!(dead.read(10, Duration::ZERO).await.unwrap().len(), 2);
        let alive = q.consumer("alive");
        assert_eq!(alive.reclaim(Duration::ZERO, 10).await.unwrap().len(), 2);
        assert_eq!(q.pending_len(), 2);
    }

    #[tokio::test]
    async fn the_memory_bound_refuses_and_acks_give_the_room_back() {
        let one = event(1).footprint();
        let q = MemoryQueue::bounded(100, 2 * one, None);
        q.enqueue(&[event(1), event(2)]).await.unwrap();
        assert_eq!(q.bytes(), 2 * one);
        assert!(matches!(
            q.enqueue(&[event(3)]).await,
            Err(QueueError::Full)
        ));
        let c = q.consumer("w");
        let got = c.read(10, Duration::ZERO).await.unwrap();
        c.ack(&[got[0].id.clone()]).await.unwrap();
        q.enqueue(&[event(3)]).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_lag_is_the_age_of_the_oldest_entry_not_taken() {
        let q = MemoryQueue::new(100, None);
        assert_eq!(
            q.storage_lag().await.unwrap().oldest_untaken,
            Duration::ZERO
        );
        q.enqueue(&[event(1)]).await.unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        q.enqueue(&[event(2)]).await.unwrap();
        let lag = q.storage_lag().await.unwrap();
        assert_eq!(
            (lag.oldest_untaken, lag.untaken, lag.taken),
            (Duration::from_secs(3), Some(2), Some(0))
        );
        let c = q.consumer("w");
        assert_eq!(c.read(1, Duration::ZERO).await.unwrap().len(), 1);
        let lag = q.storage_lag().await.unwrap();
        assert_eq!(
            (lag.oldest_untaken, lag.untaken, lag.taken),
            (Duration::ZERO, Some(1), Some(1))
        );
    }

    #[tokio::test]
    async fn a_blocked_read_wakes_on_enqueue() {
        let q = MemoryQueue::new(10, None);
        let c = q.consumer("w");
        let reader = tokio::spawn(async move { c.read(10, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.enqueue(&[event(1)]).await.unwrap();
        assert_eq!(reader.await.unwrap().unwrap().len(), 1);
    }
}
