//! Rate limits with GCRA (the generic cell rate algorithm).
//!
//! A [`Quota`] allows a burst of `burst` requests, then one per `interval`.
//! GCRA keeps one number per key, the *theoretical arrival time* (TAT): a
//! request at `now` is allowed when `max(TAT, now) + interval - now` does
//! not exceed `burst × interval`, and then moves the TAT by one interval.
//! A refusal says exactly how long to wait. [`gcra`] is the pure rule; the
//! in-memory adapter applies it under a mutex, and the Redis adapter
//! (`crate::redis::RedisRateLimiter`) in one atomic Lua script, so several
//! server processes share one limit.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{AuthError, Result};
use hse_core::clock::Clock;

/// A burst of `burst` requests, then one per `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    burst: u32,
    interval: Duration,
}

impl Quota {
    /// A quota of `burst` requests at once, refilling one per `interval`
    /// (an interval under 1 µs counts as 1 µs).
    #[must_use]
    pub fn new(burst: NonZeroU32, interval: Duration) -> Self {
        Self {
            burst: burst.get(),
            interval: interval.max(Duration::from_micros(1)),
        }
    }

    /// The burst size.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The refill interval.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The interval in microseconds.
    #[must_use]
    pub fn interval_us(&self) -> i64 {
        i64::try_from(self.interval.as_micros()).unwrap_or(i64::MAX)
    }

    /// The tolerance `burst × interval` in microseconds.
    #[must_use]
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us().saturating_mul(i64::from(self.burst))
    }
}

/// The answer of a rate limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Refused; the next request can succeed after `retry_after`.
    Limited {
        /// How long to wait.
        retry_after: Duration,
    },
}

impl Decision {
    /// `Ok` when allowed.
    ///
    /// # Errors
    /// [`AuthError::RateLimited`] carrying the time to wait.
    pub fn into_result(self) -> Result<()> {
        match self {
            Self::Allowed => Ok(()),
            Self::Limited { retry_after } => Err(AuthError::RateLimited { retry_after }),
        }
    }
}

/// The GCRA rule: given the stored TAT (µs) and `now` (µs), the decision
/// and, when allowed, the TAT to store.
#[must_use]
pub fn gcra(tat: Option<i64>, now: i64, quota: Quota) -> (Decision, Option<i64>) {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(quota.interval_us());
    let over = new_tat - now - quota.tolerance_us();
    if over > 0 {
        let retry_after = Duration::from_micros(u64::try_from(over).unwrap_or(0));
        (Decision::Limited { retry_after }, None)
    } else {
        (Decision::Allowed, Some(new_tat))
    }
}

/// Something that decides whether a request under `key` may go ahead.
#[async_trait]
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Counts one request under `key` against `quota`.
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision>;
}

/// Keys beyond which the memory limiter drops stale entries.
const PRUNE_ABOVE: usize = 10_000;

/// GCRA in process memory: for one server, and tests.
pub struct MemoryRateLimiter {
    clock: Arc<dyn Clock>,
    tats: Mutex<HashMap<String, i64>>,
}

impl MemoryRateLimiter {
    /// A limiter on `clock`.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            tats: Mutex::new(HashMap::new()),
        }
    }
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter").finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision> {
        let now = self.clock.now().timestamp_micros();
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() > PRUNE_ABOVE {
            tats.retain(|_, tat| *tat > now);
        }
        let (decision, new_tat) = gcra(tats.get(key).copied(), now, quota);
        if let Some(t) = new_tat {
            tats.insert(key.to_owned(), t);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> Quota {
        Quota::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(1))
    }

    #[test]
    fn a_burst_passes_then_the_next_waits_exactly_one_interval() {
        let (mut tat, now) = (None, 1_000_000);
        for _ in 0..3 {
            let (d, t) = gcra(tat, now, quota());
            assert_eq!(d, Decision::Allowed);
            tat = t;
        }
        let (d, _) = gcra(tat, now, quota());
        assert_eq!(
            d,
            Decision::Limited {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(gcra(tat, now + 1_000_000, quota()).0, Decision::Allowed);
    }

    #[test]
    fn a_partial_wait_reports_the_remaining_time() {
        let mut tat = None;
        for _ in 0..3 {
            tat = gcra(tat, 0, quota()).1;
        }
        assert_eq!(
            gcra(tat, 400_000, quota()).0,
            Decision::Limited {
                retry_after: Duration::from_millis(600)
            }
        );
    }

    use proptest::prelude::*;

    fn arb_quota() -> impl Strategy<Value = Quota> {
        (1u32..20, 1u64..5_000)
            .prop_map(|(b, ms)| Quota::new(NonZeroU32::new(b).unwrap(), Duration::from_millis(ms)))
    }

    proptest! {
        #[test]
        fn never_more_than_the_burst_plus_what_time_refills(
            q in arb_quota(),
            gaps in proptest::collection::vec(0i64..3_000_000, 1..200),
        ) {
            let (mut tat, mut now, mut allowed) = (None, 0i64, 0i64);
            for gap in gaps {
                now += gap;
                let (d, t) = gcra(tat, now, q);
                if d == Decision::Allowed {
                    allowed += 1;
                    tat = t;
                }
                let refilled = now / q.interval_us();
                prop_assert!(allowed <= i64::from(q.burst()) + refilled);
            }
        }

        #[test]
        fn waiting_exactly_the_reported_time_succeeds_and_a_microsecond_less_does_not(
            q in arb_quota(),
            extra in 0u32..10,
        ) {
            let mut tat = None;
            for _ in 0..q.burst() + extra {
                if let (Decision::Allowed, t) = gcra(tat, 0, q) {
                    tat = t;
                }
            }
            let (Decision::Limited { retry_after }, _) = gcra(tat, 0, q) else {
                return Err(TestCaseError::fail("the burst was not exhausted"));
            };
            let wait = i64::try_from(retry_after.as_micros()).unwrap();
            let early = matches!(gcra(tat, wait - 1, q).0, Decision::Limited { .. });
            prop_assert!(early);
            prop_assert_eq!(gcra(tat, wait, q).0, Decision::Allowed);
        }

        #[test]
        fn requests_spaced_by_the_interval_are_always_allowed(q in arb_quota(), n in 1usize..100) {
            let mut tat = None;
            for i in 0..n {
                let now = i64::try_from(i).unwrap() * q.interval_us();
                let (d, t) = gcra(tat, now, q);
                prop_assert_eq!(d, Decision::Allowed);
                tat = t;
            }
        }
    }

    #[test]
    fn a_zero_interval_counts_as_one_microsecond() {
        let q = Quota::new(NonZeroU32::MIN, Duration::ZERO);
        assert_eq!(q.interval(), Duration::from_micros(1));
    }
}
