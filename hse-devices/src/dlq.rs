//! Dead letters: events the database refused for their content.
//!
//! The batch writer isolates a poison event by splitting its batch and adds
//! it here with the reason. [`retry_due`] retries each dead letter with
//! exponential backoff (`base × 2^tries`, as the seed service did); after
//! [`DlqPolicy::max_tries`] failed tries it becomes permanent, where an
//! operator can [`DeadLetters::list`] it and, after a fix, [`replay`] it.
//! Replay is idempotent: storage ignores an event id it already has, and a
//! dead letter already replayed is simply gone.
//!
//! [`MemoryDeadLetters`] here; `RedisDeadLetters` in `redis` (feature `redis`) keeps
//! them in the streams `{prefix}dlq` and `{prefix}dlq:permanent`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{QueueError, SinkError};
use crate::model::Event;
use crate::writer::EventSink;

/// One dead letter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter store.
    pub id: String,
    /// The refused event.
    pub event: Event,
    /// The database's reason, for the operator.
    pub reason: String,
    /// Failed retries so far.
    pub tries: u32,
    /// When to retry next, Unix milliseconds.
    pub next_attempt_ms: i64,
    /// Whether retries are exhausted.
    pub permanent: bool,
}

/// Retry policy.
#[derive(Clone, Copy, Debug)]
pub struct DlqPolicy {
    /// Delay before the first retry; doubles with every failed try.
    pub base: Duration,
    /// Failed tries before a dead letter becomes permanent.
    pub max_tries: u32,
}

impl Default for DlqPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max_tries: 5,
        }
    }
}

impl DlqPolicy {
    /// When to retry after `tries` failed tries.
    #[must_use]
    pub fn next_attempt_ms(&self, now_ms: i64, tries: u32) -> i64 {
        let base = i64::try_from(self.base.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(base.saturating_mul(1_i64 << tries.min(30)))
    }
}

/// Stores dead letters.
#[async_trait]
pub trait DeadLetters: Send + Sync + fmt::Debug {
    /// Adds a refused event, first retry at `next_attempt_ms`.
    async fn add(
        &self,
        event: &Event,
        reason: &str,
        next_attempt_ms: i64,
    ) -> Result<(), QueueError>;
    /// Retrying dead letters due at `now_ms`.
    async fn due(&self, now_ms: i64, max: usize) -> Result<Vec<DeadLetter>, QueueError>;
    /// Replaces a dead letter after a failed try: rescheduled, or permanent.
    async fn update(&self, letter: &DeadLetter) -> Result<(), QueueError>;
    /// Removes a dead letter (stored at last, or replayed).
    async fn remove(&self, letter: &DeadLetter) -> Result<(), QueueError>;
    /// Up to `max` dead letters, oldest first: the permanent ones or the
    /// retrying ones.
    async fn list(&self, permanent: bool, max: usize) -> Result<Vec<DeadLetter>, QueueError>;
    /// One dead letter by id, if it is still there.
    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, QueueError>;
}

/// Retries the due dead letters once each; returns how many were stored.
///
/// # Errors
/// [`QueueError`] if the dead-letter store fails.
pub async fn retry_due(
    letters: &dyn DeadLetters,
    sink: &dyn EventSink,
    policy: &DlqPolicy,
    now_ms: i64,
) -> Result<usize, QueueError> {
    let mut stored = 0;
    for mut letter in letters.due(now_ms, 100).await? {
        match sink.store(std::slice::from_ref(&letter.event)).await {
            Ok(_) => {
                letters.remove(&letter).await?;
                stored += 1;
            }
            Err(SinkError::Transient(_)) => break,
            Err(SinkError::Content(reason)) => {
                letter.tries += 1;
                letter.reason = reason;
                letter.permanent = letter.tries >= policy.max_tries;
                letter.next_attempt_ms = policy.next_attempt_ms(now_ms, letter.tries);
                if letter.permanent {
                    tracing::error!(event.id = %letter.event.event_id, device.id = %letter.event.device_id,
                        tries = letter.tries, "event moved to the permanent dead letter");
                }
                letters.update(&letter).await?;
            }
        }
    }
    Ok(stored)
}

/// Replays a dead letter (after a fix): stores its event, then removes it.
/// Returns `false` when it is gone already (replayed before).
///
/// # Errors
/// [`SinkError`] if storing fails (the dead letter stays);
/// [`QueueError`] is reported as [`SinkError::Transient`].
pub async fn replay(
    letters: &dyn DeadLetters,
    sink: &dyn EventSink,
    id: &str,
) -> Result<bool, SinkError> {
    let transient = |e: QueueError| SinkError::Transient(e.to_string());
    let Some(letter) = letters.get(id).await.map_err(transient)? else {
        return Ok(false);
    };
    sink.store(std::slice::from_ref(&letter.event)).await?;
    letters.remove(&letter).await.map_err(transient)?;
    Ok(true)
}

/// In-process dead letters.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<(u64, BTreeMap<u64, DeadLetter>)>,
}

impl MemoryDeadLetters {
    /// None yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, (u64, BTreeMap<u64, DeadLetter>)> {
        self.letters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(id: &str) -> Result<u64, QueueError> {
    id.parse().map_err(|_| QueueError::NotFound)
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn add(
        &self,
        event: &Event,
        reason: &str,
        next_attempt_ms: i64,
    ) -> Result<(), QueueError> {
        let mut guard = self.lock();
        guard.0 += 1;
        let n = guard.0;
        let letter = DeadLetter {
            id: n.to_string(),
            event: event.clone(),
            reason: reason.to_owned(),
            tries: 0,
            next_attempt_ms,
            permanent: false,
        };
        guard.1.insert(n, letter);
        Ok(())
    }

    async fn due(&self, now_ms: i64, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let guard = self.lock();
        Ok(guard
            .1
            .values()
            .filter(|l| !l.permanent && l.next_attempt_ms <= now_ms)
            .take(max)
            .cloned()
            .collect())
    }

    async fn update(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let n = key(&letter.id)?;
        self.lock().1.insert(n, letter.clone());
        Ok(())
    }

    async fn remove(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let n = key(&letter.id)?;
        self.lock().1.remove(&n);
        Ok(())
    }

    async fn list(&self, permanent: bool, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let guard = self.lock();
        Ok(guard
            .1
            .values()
            .filter(|l| l.permanent == permanent)
            .take(max)
            .cloned()
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, QueueError> {
        Ok(key(id).ok().and_then(|n| self.lock().1.get(&n).cloned()))
    }
}
