//! Live changes for subscribers: a bounded broadcast with resume.
//!
//! Every ingested event gets a monotonically increasing cursor. The feed
//! keeps the last `capacity` changes in a ring, so a subscriber that
//! reconnects with its last cursor first gets what it missed, then live
//! changes; a slow subscriber that falls behind the broadcast is refilled
//! from the ring. Only when a subscriber falls behind the whole ring does it
//! get [`FeedGap`], so it knows it missed changes. Memory is bounded by the
//! ring and the broadcast capacity, whatever the number of subscribers.
//!
//! An event is published once: a device that resends a frame whose
//! acknowledgement it missed (a Redis pause answered `outcome_unknown`)
//! enqueues its events again, with the same `(device_id, event_id)`, and
//! the feed drops such a repeat when the original is among the last
//! [`REMEMBERED`] events it published. Relayed changes reach every node in
//! the stream's order, so every node drops the same repeats.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hse_core::DeviceId;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::model::Event;

/// One change with its cursor.
#[derive(Clone, Debug)]
pub struct Change {
    /// Position in the feed; resume after it.
    pub cursor: u64,
    /// The event.
    pub event: Arc<Event>,
}

/// A subscriber fell behind the ring: changes after `last_seen` are lost
/// to it (they are still stored; read them with an events query).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("subscriber fell behind the live feed after cursor {last_seen}")]
pub struct FeedGap {
    /// The last cursor delivered.
    pub last_seen: u64,
}

/// The in-process change feed.
#[derive(Debug)]
pub struct ChangeFeed {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Change>,
    capacity: usize,
}

/// Events remembered to drop a repeat of one already published.
pub const REMEMBERED: usize = 65_536;

#[derive(Debug, Default)]
struct Ring {
    next: u64,
    changes: VecDeque<Change>,
    published: Published,
}

/// The last [`REMEMBERED`] events published, by `(device_id, event_id)`.
#[derive(Debug, Default)]
struct Published {
    order: VecDeque<(DeviceId, Uuid)>,
    ids: HashSet<(DeviceId, Uuid)>,
}

impl Published {
    /// Remembers `event`; `false` if it was published already.
    fn first_time(&mut self, event: &Event) -> bool {
        let key = (event.device_id, event.event_id);
        if !self.ids.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

impl ChangeFeed {
    /// A feed that keeps the last `capacity` changes for resuming.
    #[must_use]
    pub fn new(capacity: usize) -> Arc<Self> {
        let (live, _) = broadcast::channel(capacity.clamp(16, 4096));
        Arc::new(Self {
            ring: Mutex::new(Ring {
                next: 1,
                changes: VecDeque::with_capacity(capacity),
                published: Published::default(),
            }),
            live,
            capacity: capacity.max(1),
        })
    }

    /// Publishes events, in order, but not again one already published.
    pub fn publish(&self, events: &[Event]) {
        let mut ring = self.lock();
        for event in events {
            if !ring.published.first_time(event) {
                continue;
            }
            let cursor = ring.next;
            self.push(&mut ring, cursor, event);
        }
    }

    /// Publishes an event under a cursor chosen elsewhere (a change relayed
    /// from Redis, whose stream id gives every node the same cursor).
    /// Cursors at or below the head are ignored, and so is an event
    /// already published.
    pub fn publish_at(&self, cursor: u64, event: &Event) {
        let mut ring = self.lock();
        if cursor >= ring.next && ring.published.first_time(event) {
            self.push(&mut ring, cursor, event);
        }
    }

    fn push(&self, ring: &mut Ring, cursor: u64, event: &Event) {
        let change = Change {
            cursor,
            event: Arc::new(event.clone()),
        };
        ring.next = cursor + 1;
        if ring.changes.len() == self.capacity {
            ring.changes.pop_front();
        }
        ring.changes.push_back(change.clone());
        let _ = self.live.send(change);
    }

    /// The cursor of the latest change (0 before any).
    #[must_use]
    pub fn head(&self) -> u64 {
        self.lock().next - 1
    }

    /// Subscribes to changes after `after` (from now on when `None`).
    #[must_use]
    pub fn subscribe(self: &Arc<Self>, after: Option<u64>) -> Subscription {
        let ring = self.lock();
        let live = self.live.subscribe();
        let last = after.unwrap_or(ring.next - 1);
        let backlog = ring
            .changes
            .iter()
            .filter(|c| c.cursor > last)
            .cloned()
            .collect();
        let oldest = ring.changes.front().map_or(ring.next, |c| c.cursor);
        drop(ring);
        Subscription {
            feed: Arc::clone(self),
            backlog,
            live,
            last,
            gap: last + 1 < oldest,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn after(&self, last: u64) -> (Vec<Change>, bool) {
        let ring = self.lock();
        let oldest = ring.changes.front().map_or(ring.next, |c| c.cursor);
        let changes = ring
            .changes
            .iter()
            .filter(|c| c.cursor > last)
            .cloned()
            .collect();
        (changes, last + 1 < oldest)
    }
}

/// One subscriber's position in the feed.
#[derive(Debug)]
pub struct Subscription {
    feed: Arc<ChangeFeed>,
    backlog: VecDeque<Change>,
    live: broadcast::Receiver<Change>,
    last: u64,
    gap: bool,
}

impl Subscription {
    /// The next change; `None` when the feed is gone.
    ///
    /// # Errors
    /// [`FeedGap`] once if changes were lost to this subscriber.
    pub async fn next(&mut self) -> Option<Result<Change, FeedGap>> {
        if std::mem::take(&mut self.gap) {
            return Some(Err(FeedGap {
                last_seen: self.last,
            }));
        }
        loop {
            if let Some(change) = self.backlog.pop_front() {
                if change.cursor > self.last {
                    self.last = change.cursor;
                    return Some(Ok(change));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(change) if change.cursor <= self.last => {}
                Ok(change) => {
                    self.last = change.cursor;
                    return Some(Ok(change));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.refill(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn refill(&mut self) {
        let (changes, gap) = self.feed.after(self.last);
        self.backlog = changes.into();
        self.gap = gap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;
    use hse_core::DeviceId;

    fn event(kind: &str) -> Event {
        Event {
            event_id: uuid::Uuid::now_v7(),
            device_id: DeviceId::new(),
            ts_ms: 0,
            event_type: EventType::parse(kind).unwrap(),
            value: None,
            unit: None,
            metadata: None,
            source: None,
        }
    }

    #[tokio::test]
    async fn a_resumed_subscriber_gets_what_it_missed_then_live_changes() {
        let feed = ChangeFeed::new(100);
        feed.publish(&[event("a"), event("b"), event("c")]);
        let mut sub = feed.subscribe(Some(1));
        assert_eq!(sub.next().await.unwrap().unwrap().cursor, 2);
        assert_eq!(sub.next().await.unwrap().unwrap().cursor, 3);
        feed.publish(&[event("d")]);
        let d = sub.next().await.unwrap().unwrap();
        assert_eq!((d.cursor, d.event.event_type.as_str()), (4, "d"));
    }

    #[tokio::test]
    async fn an_event_published_again_reaches_subscribers_once() {
        let feed = ChangeFeed::new(100);
        let mut sub = feed.subscribe(None);
        let (a, b) = (event("a"), event("b"));
        feed.publish(std::slice::from_ref(&a));
        feed.publish(&[a.clone(), b.clone()]);
        feed.publish_at(10, &b);
        feed.publish_at(11, &event("c"));
        let mut seen = Vec::new();
        for _ in 0..3 {
            let change = sub.next().await.unwrap().unwrap();
            seen.push((change.cursor, change.event.event_type.to_string()));
        }
        assert_eq!(seen, [(1, "a".into()), (2, "b".into()), (11, "c".into())]);
        assert_eq!(feed.head(), 11);
    }

    #[tokio::test]
    async fn a_subscriber_behind_the_ring_is_told_of_the_gap() {
        let feed = ChangeFeed::new(2);
        for _ in 0..5 {
            feed.publish(&[event("a")]);
        }
        let mut sub = feed.subscribe(Some(0));
        assert!(matches!(
            sub.next().await,
            Some(Err(FeedGap { last_seen: 0 }))
        ));
        assert_eq!(sub.next().await.unwrap().unwrap().cursor, 4);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_refilled_from_the_ring() {
        let feed = ChangeFeed::new(5000);
        let mut sub = feed.subscribe(None);
        for _ in 0..4500 {
            feed.publish(&[event("a")]);
        }
        for expected in 1..=4500 {
            assert_eq!(sub.next().await.unwrap().unwrap().cursor, expected);
        }
    }
}
