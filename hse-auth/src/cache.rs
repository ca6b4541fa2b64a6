//! Small in-process caches for the per-request authentication path.
//!
//! Every authenticated request verifies a signature and reads its user's
//! principal; both answers change rarely, and the benchmark profile showed
//! them as the largest costs of a read. The caches here are bounded maps
//! (cleared whole when full, so memory cannot grow with hostile input) and
//! only ever hold answers that were fully checked: a token's claims after
//! its signature, issuer, audience and kind verified; a principal read from
//! the directory, kept for a configured time-to-live and retired at once by
//! any write through the tenancy service whose [`Revision`] it shares.

use chrono::{DateTime, Duration, Utc};
use hse_core::cache::{Revision, RevisionCache};
use hse_core::{Principal, UserId};

pub(crate) use hse_core::cache::BoundedMap;

/// Principals of active users, each for at most `ttl` after it was read
/// and only until the tenancy [`Revision`] moves.
#[derive(Debug)]
pub(crate) struct PrincipalCache {
    entries: RevisionCache<UserId, Principal>,
    revision: Revision,
}

/// How many principals one process keeps.
const PRINCIPALS: usize = 65_536;

impl PrincipalCache {
    /// A cache keeping each principal for `ttl` (zero turns it off), retired
    /// early by writes counted in `revision`.
    pub(crate) fn new(ttl: Duration, revision: Revision) -> Self {
        Self {
            entries: RevisionCache::new(PRINCIPALS, ttl),
            revision,
        }
    }

    /// The revision to note before reading a principal.
    pub(crate) fn revision(&self) -> u64 {
        self.revision.current()
    }

    /// The principal of `user` if it was read less than `ttl` before `now`
    /// and no tenancy write was counted since.
    pub(crate) fn get(&self, user: UserId, now: DateTime<Utc>) -> Option<Principal> {
        self.entries.get(&user, now, self.revision.current())
    }

    /// Keeps `principal`, read at `now` after noting `revision`.
    pub(crate) fn insert(&self, principal: Principal, now: DateTime<Utc>, revision: u64) {
        self.entries
            .insert(principal.user_id, principal, now, revision);
    }

    /// Forgets every principal (after a change that may affect any).
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }
}
