//! The [`LockProgrammer`] port and the worker that drives codes onto locks.
//!
//! The server wires the port to device commands (hse-booking never imports
//! hse-devices). The [`CodeProgrammer`] claims due codes, calls the port,
//! and records the outcome: acknowledged codes become active (or removed),
//! unreachable locks are retried with capped exponential backoff, refusals
//! fail with the lock's reason. A code changed by its booking meanwhile is
//! left for the next pass (version check), so the lock converges on the
//! latest intent.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::DeviceId;
use tracing::{Instrument, info_span, warn};

use crate::clock::Clock;
use crate::codes::{self, Attempt, CodeState, DoorCodeRecord};
use crate::door_code::DoorCode;
use crate::error::Result;
use crate::model::DoorCodeId;
use crate::store::BookingStore;

/// A code to put on a lock, in slot `slot`.
#[derive(Debug)]
pub struct ProgramCode<'a> {
    /// The lock.
    pub device: DeviceId,
    /// The slot id (the code's id); programming a slot again replaces it.
    pub slot: DoorCodeId,
    /// The PIN.
    pub code: &'a DoorCode,
    /// Opens at.
    pub valid_from: DateTime<Utc>,
    /// Closes at.
    pub valid_until: DateTime<Utc>,
}

/// Sends code changes to door locks. Both operations must be idempotent.
#[async_trait]
pub trait LockProgrammer: Send + Sync + std::fmt::Debug {
    /// Puts (or replaces) a code in a slot.
    async fn program(&self, request: &ProgramCode<'_>) -> Attempt;
    /// Removes a slot's code (absent already counts as acknowledged).
    async fn remove(&self, device: DeviceId, slot: DoorCodeId) -> Attempt;
}

/// Drives claimed codes onto their locks.
#[derive(Debug, Clone)]
pub struct CodeProgrammer {
    store: Arc<dyn BookingStore>,
    lock: Arc<dyn LockProgrammer>,
    clock: Arc<dyn Clock>,
    /// How long a claim holds before another worker may retry it; must
    /// exceed `batch` × `attempt_timeout`.
    pub lease: Duration,
    /// Codes per pass.
    pub batch: u32,
    /// How long one lock call may take before it counts as unreachable.
    pub attempt_timeout: std::time::Duration,
    /// Pause between passes.
    pub interval: std::time::Duration,
}

impl CodeProgrammer {
    /// A worker with a 10 min lease, batches of 20, 20 s per lock call and
    /// 1 s passes (the lease covers a whole batch of slow calls).
    #[must_use]
    pub fn new(
        store: Arc<dyn BookingStore>,
        lock: Arc<dyn LockProgrammer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            lock,
            clock,
            lease: Duration::minutes(10),
            batch: 20,
            attempt_timeout: std::time::Duration::from_secs(20),
            interval: std::time::Duration::from_secs(1),
        }
    }

    /// One pass: claims due codes and attempts each; returns how many
    /// results were stored.
    ///
    /// Runs in a `worker.job` span, `worker = "door_codes"`.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(name = "worker.job", skip_all, fields(worker = "door_codes"))]
    pub async fn run_once(&self) -> Result<usize> {
        let now = self.clock.now();
        let claimed = self.store.claim_codes(now, self.lease, self.batch).await?;
        let mut stored = 0;
        for code in claimed {
            let span = info_span!("door_code", code.id = %code.id, device.id = %code.device_id, code.state = %code.state);
            let attempt = self.attempt(&code).instrument(span).await;
            if let Attempt::Refused(reason) = &attempt {
                warn!(code.id = %code.id, reason, "lock refused a door code");
            }
            let next = codes::after_attempt(&code, &attempt, self.clock.now());
            if self.store.finish_code(&next).await? {
                stored += 1;
            }
        }
        Ok(stored)
    }

    async fn attempt(&self, code: &DoorCodeRecord) -> Attempt {
        tokio::time::timeout(self.attempt_timeout, self.call(code))
            .await
            .unwrap_or(Attempt::Unreachable)
    }

    async fn call(&self, code: &DoorCodeRecord) -> Attempt {
        if code.state == CodeState::Removing {
            return self.lock.remove(code.device_id, code.id).await;
        }
        let request = ProgramCode {
            device: code.device_id,
            slot: code.id,
            code: &code.code,
            valid_from: code.valid_from,
            valid_until: code.valid_until,
        };
        self.lock.program(&request).await
    }

    /// Runs passes until `stop` completes; a failed pass is logged and
    /// retried on the next tick.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.run_once().await {
                warn!(error = %e, "door-code pass failed");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}
