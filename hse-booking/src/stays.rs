//! The check-in/check-out worker: confirmed bookings start at check-in,
//! in-progress ones complete at check-out. The store's moves are
//! conditional, so the worker is idempotent and several server processes
//! may run it at once; the clock is injectable so tests control time.

use std::future::Future;
use std::sync::Arc;

use tracing::{info, warn};

use crate::clock::Clock;
use crate::error::Result;
use crate::store::{BookingStore, StayMoves};

/// Moves bookings along as time passes.
#[derive(Debug, Clone)]
pub struct StayWorker {
    store: Arc<dyn BookingStore>,
    clock: Arc<dyn Clock>,
    /// Bookings per pass and direction.
    pub batch: u32,
    /// Pause between passes.
    pub interval: std::time::Duration,
}

impl StayWorker {
    /// A worker with batches of 100 and 30 s passes.
    #[must_use]
    pub fn new(store: Arc<dyn BookingStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            batch: 100,
            interval: std::time::Duration::from_secs(30),
        }
    }

    /// One pass at the clock's current time.
    ///
    /// Runs in a `worker.job` span, `worker = "stays"`.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(name = "worker.job", skip_all, fields(worker = "stays"))]
    pub async fn run_once(&self) -> Result<StayMoves> {
        let moves = self
            .store
            .advance_stays(self.clock.now(), self.batch)
            .await?;
        if !moves.checked_in.is_empty() || !moves.checked_out.is_empty() {
            info!(
                stays.checked_in = moves.checked_in.len(),
                stays.checked_out = moves.checked_out.len(),
                "stays advanced"
            );
        }
        Ok(moves)
    }

    /// Runs passes until `stop` completes.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.run_once().await {
                warn!(error = %e, "stay pass failed");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}
