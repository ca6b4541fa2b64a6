//! In-process caches of tenancy answers, and the revision that retires them.
//!
//! A request's authorization needs two answers that change rarely: the
//! caller's principal (role, grants, assignments) and where the target
//! lives in the tenant tree. Reading both from the database on every
//! request was the largest cost of a read (see BENCHMARKS.md), so they are
//! kept for a short time-to-live. Two things bound how stale an answer can
//! be:
//!
//! - the [`Revision`] of the [`Tenancy`](crate::Tenancy) service, bumped
//!   after every write it makes: an answer read before a write made through
//!   this process is never served after it (readers note the revision
//!   *before* reading, writers bump it *after* committing);
//! - the time-to-live, for changes made elsewhere (another process, or the
//!   store directly).
//!
//! Maps are bounded and emptied whole when full, so hostile input (random
//! ids) cannot grow memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A counter of the writes made through one [`Tenancy`](crate::Tenancy)
/// service. Cheap to clone; clones share the count.
#[derive(Clone, Debug, Default)]
pub struct Revision(Arc<AtomicU64>);

impl Revision {
    /// A fresh counter at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The current count. Note it before reading what a write could change.
    #[must_use]
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Counts one write. Call it after the write committed.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// A map of at most `capacity` entries, emptied when it would overflow.
/// Its `Debug` shows sizes only: keys may be credentials.
pub struct BoundedMap<K, V> {
    entries: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> BoundedMap<K, V> {
    /// An empty map holding up to `capacity` entries (zero keeps nothing).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A copy of the value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().get(key).cloned()
    }

    /// Stores `value` under `key`, first emptying a full map.
    pub fn insert(&self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// Forgets `key`.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().remove(key);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        // A panic while holding the lock cannot leave a half-written map
        // (every operation is one HashMap call), so a poisoned lock is safe
        // to keep using.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K, V> std::fmt::Debug for BoundedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("BoundedMap")
            .field("len", &len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// One answer and when (clock time and [`Revision`]) it was read.
#[derive(Clone, Debug)]
struct Noted<V> {
    value: V,
    read_at: DateTime<Utc>,
    revision: u64,
}

/// Answers kept for at most `ttl` and only while the [`Revision`] they were
/// read at is current.
#[derive(Debug)]
pub struct RevisionCache<K, V> {
    entries: BoundedMap<K, Noted<V>>,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> RevisionCache<K, V> {
    /// A cache of up to `capacity` answers, each for `ttl`; a zero (or
    /// negative) `ttl` keeps nothing.
    #[must_use]
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = if ttl > Duration::zero() { capacity } else { 0 };
        Self {
            entries: BoundedMap::new(capacity),
            ttl,
        }
    }

    /// The answer under `key` if it was read less than `ttl` before `now`
    /// and no write was counted since (`revision` is the current count).
    pub fn get(&self, key: &K, now: DateTime<Utc>, revision: u64) -> Option<V> {
        let noted = self.entries.get(key)?;
        let fresh = now >= noted.read_at && now - noted.read_at < self.ttl;
        if fresh && noted.revision == revision {
            return Some(noted.value);
        }
        self.entries.remove(key);
        None
    }

    /// Keeps `value`, read at `now` after noting `revision`.
    pub fn insert(&self, key: K, value: V, now: DateTime<Utc>, revision: u64) {
        let noted = Noted {
            value,
            read_at: now,
            revision,
        };
        self.entries.insert(key, noted);
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::seconds(seconds)
    }

    #[test]
    fn a_full_map_is_emptied_before_the_next_insert() {
        let map = BoundedMap::new(2);
        map.insert(1, "a");
        map.insert(2, "b");
        map.insert(3, "c");
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&3), Some("c"));
    }

    #[test]
    fn a_zero_capacity_map_keeps_nothing() {
        let map = BoundedMap::new(0);
        map.insert(1, "a");
        assert_eq!(map.get(&1), None);
    }

    #[test]
    fn an_answer_serves_within_its_ttl_at_its_revision() {
        let cache = RevisionCache::new(8, Duration::seconds(1));
        cache.insert("k", 7, at(10), 3);
        assert_eq!(cache.get(&"k", at(10), 3), Some(7));
        assert_eq!(
            cache.get(&"k", at(10) + Duration::milliseconds(999), 3),
            Some(7)
        );
    }

    #[test]
    fn an_answer_expires_after_its_ttl() {
        let cache = RevisionCache::new(8, Duration::seconds(1));
        cache.insert("k", 7, at(10), 3);
        assert_eq!(cache.get(&"k", at(11), 3), None);
        assert_eq!(
            cache.get(&"k", at(10), 3),
            None,
            "an expired answer is gone"
        );
    }

    #[test]
    fn a_write_counted_after_the_read_retires_the_answer() {
        let revision = Revision::new();
        let cache = RevisionCache::new(8, Duration::seconds(60));
        let noted = revision.current();
        cache.insert("k", 7, at(10), noted);
        revision.bump();
        assert_eq!(cache.get(&"k", at(10), revision.current()), None);
    }

    #[test]
    fn an_answer_from_the_future_is_not_trusted() {
        let cache = RevisionCache::new(8, Duration::seconds(1));
        cache.insert("k", 7, at(10), 0);
        assert_eq!(cache.get(&"k", at(9), 0), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = RevisionCache::new(8, Duration::zero());
        cache.insert("k", 7, at(10), 0);
        assert_eq!(cache.get(&"k", at(10), 0), None);
    }

    #[test]
    fn clones_of_a_revision_share_the_count() {
        let revision = Revision::new();
        let other = revision.clone();
        other.bump();
        assert_eq!(revision.current(), 1);
    }
}
