//! The entry of the pipeline that every protocol adapter uses.
//!
//! A protocol adapter (the line protocol over TCP or WebSocket here; MQTT or
//! a vendor format later) turns its input into validated [`Event`]s and calls
//! [`Ingest::submit`]; it acks its device only when that returns `Ok`. The
//! pipeline behind (queue, batch writer, storage, live feed) does not know
//! which protocol an event came by.
//!
//! # Back-pressure that follows storage
//! Events are refused with [`IngestError::Overloaded`] while the storage
//! lag is past [`Backpressure::max_lag`], and while the queue is past its
//! high-water mark of entries or full (the in-process queue's memory
//! bound). The lag is the longer of the age of the oldest entry no writer
//! has taken and the time the writers need, at their recent pace, for the
//! entries waiting: an entry enqueued now waits about that long. (The age
//! alone reacts late: while it is under the bound, a fast fleet can admit
//! many times what a slow writer stores in that time.) It is measured
//! ([`EventQueue::storage_lag`]) at most once per
//! [`Backpressure::refresh`]: one caller measures, the others use the
//! cached value; never a round trip per frame.
//!
//! | outcome | code | `retry_after_ms` | were the events enqueued? |
//! |---|---|---|---|
//! | `Ok` | `ack` | — | yes |
//! | lag past the bound | `overloaded` | lag − bound, within 250–10,000 | no |
//! | high-water mark or queue full | `overloaded` | 1,000 | no |
//! | queue unreachable | `unavailable` | 1,000 | no |
//! | sent, no answer in time | `outcome_unknown` | 1,000 | maybe: resend |
//!
//! An answer that comes late but within the queue's timeout is an ack.
//!
//! Metrics: `hse_devices_events_enqueued_total`,
//! `hse_devices_events_refused_total{reason}`, `hse_devices_queue_backlog`,
//! `hse_devices_storage_lag_seconds`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ErrorCode, QueueError};
use crate::feed::ChangeFeed;
use crate::model::Event;
use crate::queue::{EventQueue, LagSample};

/// How long a device is asked to wait after `unavailable`,
/// `outcome_unknown`, or `overloaded` from a full queue.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The shortest `retry_after_ms` of an `overloaded` for lag.
pub const MIN_RETRY_AFTER: Duration = Duration::from_millis(250);
/// The longest `retry_after_ms` of an `overloaded` for lag.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Longest wait for a lag measurement; past it the last value stands.
const MEASURE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why events were not accepted; the device should retry later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// Storage lags past the bound, the queue's backlog is past the
    /// high-water mark, or the queue is full. Nothing was enqueued.
    #[error("overloaded; retry later")]
    Overloaded {
        /// How long the device should wait.
        retry_after: Duration,
    },
    /// The queue could not be reached. Nothing was enqueued.
    #[error("queue unavailable; retry later")]
    Unavailable {
        /// How long the device should wait.
        retry_after: Duration,
    },
    /// The enqueue was sent and its answer did not come in time: the events
    /// may or may not be enqueued. Resending them is safe (storage
    /// deduplicates by `event_id`).
    #[error("enqueue outcome unknown; resend")]
    OutcomeUnknown {
        /// How long the device should wait.
        retry_after: Duration,
    },
}

impl IngestError {
    /// The `nack` code for the device.
    #[must_use]
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Overloaded { .. } => ErrorCode::Overloaded,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::OutcomeUnknown { .. } => ErrorCode::OutcomeUnknown,
        }
    }

    /// How long the device should wait before it retries.
    #[must_use]
    pub fn retry_after(self) -> Duration {
        match self {
            Self::Overloaded { retry_after }
            | Self::Unavailable { retry_after }
            | Self::OutcomeUnknown { retry_after } => retry_after,
        }
    }
}

/// When ingest refuses events to let storage catch up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backpressure {
    /// Refuse while the storage lag is past this (`HSE_INGEST_MAX_LAG_MS`).
    pub max_lag: Duration,
    /// Measure the lag at most this often.
    pub refresh: Duration,
    /// Refuse while the queue holds this many entries or more.
    pub high_water: u64,
}

impl Default for Backpressure {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(5),
            refresh: Duration::from_millis(200),
            high_water: 2_000_000,
        }
    }
}

impl Backpressure {
    /// The `retry_after` for a storage lag of `lag` past the bound.
    #[must_use]
    pub fn retry_after(&self, lag: Duration) -> Duration {
        lag.saturating_sub(self.max_lag)
            .clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
    }
}

/// The last lag measured, and when.
#[derive(Debug)]
struct LagCache {
    base: Instant,
    lag_ms: AtomicU64,
    /// Milliseconds since `base` of the last measurement; `u64::MAX` before
    /// the first.
    measured_ms: AtomicU64,
    measuring: AtomicBool,
    pace: Mutex<Pace>,
    /// What each entry admitted since the last measurement adds to the
    /// lag, in microseconds (zero while the writers keep up).
    per_entry_us: AtomicU64,
    /// Entries admitted since the last measurement.
    admitted: AtomicU64,
}

/// The writers' recent pace, from the `taken` counter of successive
/// samples.
#[derive(Debug, Default)]
struct Pace {
    last: Option<(Instant, u64)>,
    /// Entries taken per second, smoothed.
    per_second: f64,
}

/// Weight of the newest pace measurement.
const PACE_WEIGHT: f64 = 0.3;

impl Pace {
    /// The lag `sample` implies, updating the pace, and the time each
    /// further entry adds to it (zero when not counted). The pace counts
    /// only once the oldest entry has waited `behind`: until then the
    /// writers keep up, their pace is the fleet's, not what they could
    /// take, and says nothing about how fast a burst would go.
    fn lag(&mut self, sample: &LagSample, now: Instant, behind: Duration) -> (Duration, Duration) {
        if let Some(taken) = sample.taken {
            if let Some((at, before)) = self.last {
                let elapsed = now.duration_since(at).as_secs_f64();
                if elapsed > 0.0 {
                    let recent = taken.saturating_sub(before) as f64 / elapsed;
                    self.per_second = if self.per_second == 0.0 {
                        recent
                    } else {
                        PACE_WEIGHT * recent + (1.0 - PACE_WEIGHT) * self.per_second
                    };
                }
            }
            self.last = Some((now, taken));
        }
        if self.per_second < 1.0 || sample.oldest_untaken < behind {
            return (sample.oldest_untaken, Duration::ZERO);
        }
        let per_entry = Duration::from_secs_f64(1.0 / self.per_second);
        let waiting = sample.untaken.map_or(Duration::ZERO, |n| {
            Duration::try_from_secs_f64(n as f64 / self.per_second).unwrap_or(Duration::MAX)
        });
        (sample.oldest_untaken.max(waiting), per_entry)
    }
}

impl LagCache {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            lag_ms: AtomicU64::new(0),
            measured_ms: AtomicU64::new(u64::MAX),
            measuring: AtomicBool::new(false),
            pace: Mutex::new(Pace::default()),
            per_entry_us: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn is_stale(&self, refresh: Duration) -> bool {
        let at = self.measured_ms.load(Ordering::Acquire);
        at == u64::MAX
            || self.now_ms().saturating_sub(at) >= u64::try_from(refresh.as_millis()).unwrap_or(0)
    }

    fn cached(&self) -> Duration {
        Duration::from_millis(self.lag_ms.load(Ordering::Acquire))
    }
}

/// Clears `measuring` however the measurement ends (a session may drop
/// its frame's future mid-measurement).
struct Measuring<'a>(&'a LagCache);

impl Drop for Measuring<'_> {
    fn drop(&mut self) {
        self.0.measuring.store(false, Ordering::Release);
    }
}

/// Enqueues events durably and publishes them to live subscribers.
#[derive(Clone)]
pub struct Ingest {
    queue: Arc<dyn EventQueue>,
    feed: Arc<ChangeFeed>,
    pressure: Backpressure,
    lag: Arc<LagCache>,
    publish_locally: bool,
}

impl fmt::Debug for Ingest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ingest")
            .field("pressure", &self.pressure)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Ingest into `queue`, refusing new events while its backlog is at or
    /// past `high_water` entries or storage lags past the default bound
    /// (see [`Backpressure::default`] and [`Ingest::with_backpressure`]).
    #[must_use]
    pub fn new(queue: Arc<dyn EventQueue>, feed: Arc<ChangeFeed>, high_water: u64) -> Self {
        Self {
            queue,
            feed,
            pressure: Backpressure {
                high_water,
                ..Backpressure::default()
            },
            lag: Arc::new(LagCache::new()),
            publish_locally: true,
        }
    }

    /// Replaces the back-pressure settings.
    #[must_use]
    pub fn with_backpressure(mut self, pressure: Backpressure) -> Self {
        self.pressure = pressure;
        self
    }

    /// Leaves publishing to the live feed to a relay (`redis::ChangeRelay`
    /// when several nodes share Redis), so every node's feed gets every
    /// node's events under the same cursors.
    #[must_use]
    pub fn relayed(mut self) -> Self {
        self.publish_locally = false;
        self
    }

    /// The live change feed.
    #[must_use]
    pub fn feed(&self) -> &Arc<ChangeFeed> {
        &self.feed
    }

    /// The storage lag, measured at most once per refresh interval.
    pub async fn storage_lag(&self) -> Duration {
        let cache = &self.lag;
        if !cache.is_stale(self.pressure.refresh)
            || cache
                .measuring
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return cache.cached();
        }
        let _measuring = Measuring(cache);
        match tokio::time::timeout(MEASURE_TIMEOUT, self.queue.storage_lag()).await {
            Ok(Ok(sample)) => {
                let (lag, per_entry) = cache
                    .pace
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .lag(&sample, Instant::now(), self.pressure.max_lag / 4);
                let ms = u64::try_from(lag.as_millis()).unwrap_or(u64::MAX);
                let us = u64::try_from(per_entry.as_micros()).unwrap_or(u64::MAX);
                cache.lag_ms.store(ms, Ordering::Release);
                cache.per_entry_us.store(us, Ordering::Release);
                cache.admitted.store(0, Ordering::Release);
                metrics::gauge!("hse_devices_storage_lag_seconds").set(lag.as_secs_f64());
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "storage lag not measured"),
            Err(_) => tracing::debug!("storage lag not measured in time"),
        }
        cache.measured_ms.store(cache.now_ms(), Ordering::Release);
        cache.cached()
    }

    /// Durably enqueues `events`, then publishes them to the live feed.
    ///
    /// # Errors
    /// [`IngestError::Overloaded`] while storage lags past the bound, past
    /// the high-water mark or when the queue is full, and
    /// [`IngestError::Unavailable`] when it cannot be reached: nothing was
    /// enqueued then. [`IngestError::OutcomeUnknown`] when the enqueue was
    /// sent and not answered in time: possibly everything was; the device
    /// resends with the same ids and storage deduplicates.
    pub async fn submit(&self, events: &[Event]) -> Result<(), IngestError> {
        if let Err(e) = self.admit(events.len()).await {
            metrics::counter!("hse_devices_events_refused_total", "reason" => "overloaded")
                .increment(events.len() as u64);
            return Err(e);
        }
        match self.queue.enqueue(events).await {
            Ok(()) => {
                metrics::counter!("hse_devices_events_enqueued_total")
                    .increment(events.len() as u64);
                if self.publish_locally {
                    self.feed.publish(events);
                }
                Ok(())
            }
            Err(e) => Err(self.refusal(&e, events.len())),
        }
    }

    /// Whether the queue takes `n` more entries now: the lag measured, plus
    /// what the entries admitted since add at the writers' pace (so a burst
    /// between two measurements cannot overshoot the bound).
    async fn admit(&self, n: usize) -> Result<(), IngestError> {
        let measured = self.storage_lag().await;
        let cache = &self.lag;
        let admitted = cache.admitted.load(Ordering::Acquire);
        let added = cache
            .per_entry_us
            .load(Ordering::Acquire)
            .saturating_mul(admitted);
        let lag = measured.saturating_add(Duration::from_micros(added));
        if lag > self.pressure.max_lag {
            return Err(IngestError::Overloaded {
                retry_after: self.pressure.retry_after(lag),
            });
        }
        let backlog = self.queue.backlog();
        metrics::gauge!("hse_devices_queue_backlog").set(backlog as f64);
        if backlog >= self.pressure.high_water {
            return Err(IngestError::Overloaded {
                retry_after: RETRY_AFTER,
            });
        }
        cache.admitted.fetch_add(n as u64, Ordering::AcqRel);
        Ok(())
    }

    fn refusal(&self, error: &QueueError, events: usize) -> IngestError {
        let (reason, refusal) = match error {
            QueueError::Full => (
                "overloaded",
                IngestError::Overloaded {
                    retry_after: RETRY_AFTER,
                },
            ),
            QueueError::OutcomeUnknown(_) => (
                "outcome_unknown",
                IngestError::OutcomeUnknown {
                    retry_after: RETRY_AFTER,
                },
            ),
            _ => (
                "unavailable",
                IngestError::Unavailable {
                    retry_after: RETRY_AFTER,
                },
            ),
        };
        if !matches!(error, QueueError::Full) {
            tracing::warn!(error = %error, events, "enqueue failed");
        }
        metrics::counter!("hse_devices_events_refused_total", "reason" => reason)
            .increment(events as u64);
        refusal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_counts_the_wait_of_what_is_queued_at_the_writers_pace() {
        let mut pace = Pace::default();
        let behind = Duration::from_millis(50);
        let t0 = Instant::now();
        let sample = |age_ms, untaken, taken| LagSample {
            oldest_untaken: Duration::from_millis(age_ms),
            untaken: Some(untaken),
            taken: Some(taken),
        };
        // No pace known yet: the oldest entry's age.
        let (lag, _) = pace.lag(&sample(100, 5000, 0), t0, behind);
        assert_eq!(lag, Duration::from_millis(100));
        // 200 taken in one second: 2,000 waiting take 10 s.
        let t1 = t0 + Duration::from_secs(1);
        let (lag, per_entry) = pace.lag(&sample(100, 2000, 200), t1, behind);
        assert_eq!(
            (lag, per_entry),
            (Duration::from_secs(10), Duration::from_millis(5))
        );
        // Writers that keep up (nothing waited `behind`): the age alone,
        // however slow the fleet made their pace.
        let (lag, per_entry) = pace.lag(&sample(10, 2000, 200), t1, behind);
        assert_eq!(
            (lag, per_entry),
            (Duration::from_millis(10), Duration::ZERO)
        );
        // Nothing waiting: the age alone.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(pace.lag(&sample(0, 0, 400), t2, behind).0, Duration::ZERO);
        // A backend that cannot count: the age alone.
        let unknown = LagSample {
            oldest_untaken: Duration::from_millis(700),
            ..LagSample::default()
        };
        assert_eq!(pace.lag(&unknown, t2, behind).0, Duration::from_millis(700));
    }

    #[test]
    fn retry_after_grows_with_the_excess_lag_within_bounds() {
        let p = Backpressure {
            max_lag: Duration::from_secs(2),
            ..Backpressure::default()
        };
        assert_eq!(p.retry_after(Duration::from_millis(2100)), MIN_RETRY_AFTER);
        assert_eq!(
            p.retry_after(Duration::from_secs(5)),
            Duration::from_secs(3)
        );
        assert_eq!(p.retry_after(Duration::from_secs(60)), MAX_RETRY_AFTER);
    }
}
