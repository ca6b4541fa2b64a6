//! Small in-process caches for the per-request authentication path.
//!
//! Every authenticated request verifies a signature and reads its user's
//! principal; both answers change rarely, and the benchmark profile showed
//! them as the largest costs of a read. The caches here are bounded maps
//! (cleared whole when full, so memory cannot grow with hostile input) and
//! only ever hold answers that were fully checked: a token's claims after
//! its signature, issuer, audience and kind verified; a principal read from
//! the directory, kept for a configured time-to-live.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use hse_core::{Principal, UserId};

/// A map of at most `capacity` entries, emptied when it would overflow.
/// Its `Debug` shows sizes only: keys may be credentials.
pub(crate) struct BoundedMap<K, V> {
    entries: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> BoundedMap<K, V> {
    /// An empty map holding up to `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A copy of the value under `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().get(key).cloned()
    }

    /// Stores `value` under `key`, first emptying a full map.
    pub(crate) fn insert(&self, key: K, value: V) {
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
    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().remove(key);
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
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

/// Principals of active users, each for at most `ttl` after it was read.
#[derive(Debug)]
pub(crate) struct PrincipalCache {
    entries: BoundedMap<UserId, (Principal, DateTime<Utc>)>,
    ttl: Duration,
}

/// How many principals one process keeps.
const PRINCIPALS: usize = 65_536;

impl PrincipalCache {
    /// A cache keeping each principal for `ttl`; zero turns it off.
    pub(crate) fn new(ttl: Duration) -> Self {
        let capacity = if ttl > Duration::zero() {
            PRINCIPALS
        } else {
            0
        };
        Self {
            entries: BoundedMap::new(capacity),
            ttl,
        }
    }

    /// The principal of `user` if it was read less than `ttl` before `now`.
    pub(crate) fn get(&self, user: UserId, now: DateTime<Utc>) -> Option<Principal> {
        let (principal, read_at) = self.entries.get(&user)?;
        if now - read_at < self.ttl && now >= read_at {
            return Some(principal);
        }
        self.entries.remove(&user);
        None
    }

    /// Keeps `principal`, read at `now`.
    pub(crate) fn insert(&self, principal: Principal, now: DateTime<Utc>) {
        self.entries.insert(principal.user_id, (principal, now));
    }

    /// Forgets every principal (after a change that may affect any).
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
