//! API-key usage audit, written in batches so it never slows a request.
//!
//! [`UsageRecorder::record`] puts a [`KeyUsage`] on a bounded channel
//! without waiting: when the channel is full the record is dropped and
//! counted (a slow database must not stall the API). [`UsageWriter::run`]
//! collects records and writes them with one store call per batch, when
//! the batch is full or the flush interval passes, and flushes what is left
//! when every recorder is gone (graceful shutdown).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::KeyUsage;
use crate::store::AuthStore;

/// Sizes and timing of the audit pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Records that may wait in the channel (default 10 000).
    pub capacity: usize,
    /// Records per write at most (default 500).
    pub max_batch: usize,
    /// How long a record waits at most before being written (default 1 s).
    pub flush_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_batch: 500,
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// The sending side: cheap to clone, never waits.
#[derive(Clone, Debug)]
pub struct UsageRecorder {
    tx: mpsc::Sender<KeyUsage>,
    dropped: Arc<AtomicU64>,
}

impl UsageRecorder {
    /// Queues a record; drops it (and counts the drop) if the queue is full.
    pub fn record(&self, usage: KeyUsage) {
        if self.tx.try_send(usage).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("hse_auth_audit_dropped_total").increment(1);
            if dropped.is_power_of_two() {
                tracing::warn!(
                    audit.dropped = dropped,
                    "usage audit queue full; dropping records"
                );
            }
        }
    }

    /// How many records were dropped so far.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The writing side: run it as a background task.
#[derive(Debug)]
pub struct UsageWriter {
    rx: mpsc::Receiver<KeyUsage>,
    store: Arc<dyn AuthStore>,
    config: AuditConfig,
}

/// Builds the recorder and its writer.
#[must_use]
pub fn usage_audit(store: Arc<dyn AuthStore>, config: AuditConfig) -> (UsageRecorder, UsageWriter) {
    let (tx, rx) = mpsc::channel(config.capacity.max(1));
    let recorder = UsageRecorder {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    (recorder, UsageWriter { rx, store, config })
}

impl UsageWriter {
    /// Writes batches until every recorder is dropped, then flushes the rest.
    pub async fn run(self) {
        self.run_until_stopped(std::future::pending::<()>()).await;
    }

    /// Writes batches until `stop` completes or every recorder is dropped,
    /// then writes whatever is still queued (graceful shutdown).
    pub async fn run_until_stopped(mut self, stop: impl Future<Output = ()>) {
        let max = self.config.max_batch.max(1);
        let mut batch = Vec::with_capacity(max);
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            let room = max - batch.len();
            tokio::select! {
                received = self.rx.recv_many(&mut batch, room) => {
                    if received == 0 {
                        break;
                    }
                    if batch.len() >= max {
                        self.flush(&mut batch).await;
                    }
                }
                _ = tick.tick() => self.flush(&mut batch).await,
                () = &mut stop => break,
            }
        }
        self.drain(batch).await;
    }

    async fn drain(&mut self, mut batch: Vec<KeyUsage>) {
        self.rx.close();
        let max = self.config.max_batch.max(1);
        while let Ok(usage) = self.rx.try_recv() {
            batch.push(usage);
            if batch.len() >= max {
                self.flush(&mut batch).await;
            }
        }
        self.flush(&mut batch).await;
    }

    async fn flush(&self, batch: &mut Vec<KeyUsage>) {
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        match self.store.insert_usage(batch).await {
            Ok(()) => tracing::debug!(
                batch.size = batch.len(),
                batch.duration_ms = started.elapsed().as_millis(),
                "usage audit written"
            ),
            Err(e) => tracing::error!(batch.size = batch.len(), error = %e,
                "usage audit batch lost"),
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::memory::MemoryAuthStore;
    use crate::model::ApiKeyId;

    fn usage(key: ApiKeyId, status: u16) -> KeyUsage {
        KeyUsage {
            key_id: key,
            route: "GET /api/v1/devices".into(),
            status,
            at: Utc::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn records_are_written_after_the_interval_and_flushed_at_shutdown() {
        let store = Arc::new(MemoryAuthStore::new());
        let (recorder, writer) = usage_audit(store.clone(), AuditConfig::default());
        let task = tokio::spawn(writer.run());
        let key = ApiKeyId::new();
        recorder.record(usage(key, 200));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(store.key_usage(key, 10).await.unwrap().len(), 1);
        recorder.record(usage(key, 404));
        drop(recorder);
        task.await.unwrap();
        assert_eq!(store.key_usage(key, 10).await.unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_signal_flushes_what_is_queued_in_batches() {
        let store = Arc::new(MemoryAuthStore::new());
        let config = AuditConfig {
            max_batch: 2,
            flush_interval: Duration::from_secs(3600),
            ..AuditConfig::default()
        };
        let (recorder, writer) = usage_audit(store.clone(), config);
        let key = ApiKeyId::new();
        for status in [200, 201, 202, 203, 204] {
            recorder.record(usage(key, status));
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(writer.run_until_stopped(async {
            let _ = stop_rx.await;
        }));
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(store.key_usage(key, 10).await.unwrap().len(), 5);
        drop(recorder);
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let store = Arc::new(MemoryAuthStore::new());
        let config = AuditConfig {
            capacity: 2,
            ..AuditConfig::default()
        };
        let (recorder, _writer) = usage_audit(store, config);
        for _ in 0..5 {
            recorder.record(usage(ApiKeyId::new(), 200));
        }
        assert_eq!(recorder.dropped(), 3);
    }
}
