//! The batch writer: from the queue into storage, losing and duplicating
//! nothing.
//!
//! It reads its own pending entries first, then new ones; batches up to
//! `batch_size` events or `batch_wait`; stores them idempotently through an
//! [`EventSink`]; and acks the queue only after the sink returned (after the
//! commit). The next batch is read while earlier ones are stored, and up to
//! `concurrency` batches are stored at once (on as many connections), so
//! queue reads, decoding and the database's work overlap; the order in which
//! batches commit does not matter, since each is idempotent and acked alone.
//! A crash anywhere redelivers at most the unacked batches, which the
//! sink deduplicates by `event_id`. Transient failures are retried with
//! capped exponential backoff and never dead-lettered; a batch refused for
//! its content is split in halves until the poison events are isolated,
//! which go to the dead letters while the rest is stored. A janitor step
//! reclaims entries idle longer than `claim_idle`; on Redis it also takes
//! over at once the entries of a consumer that stopped reading
//! (`RedisConsumer::with_dead_after`, 15 s) and removes such consumers from
//! the group once they hold nothing.
//!
//! Metrics: `hse_devices_events_stored_total`,
//! `hse_devices_batch_duration_seconds`, `hse_devices_dead_lettered_total`.
//! Each batch is stored in a `writer.batch` span (`batch.size`, then
//! `batch.duration_ms`), so its retries and dead letters are logged with it.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::dlq::{DeadLetters, DlqPolicy, retry_due};
use crate::error::SinkError;
use crate::model::Event;
use crate::queue::{Delivery, DeliveryId, QueueConsumer};

/// Longest wait of one queue read. A read is never abandoned once sent
/// (what Redis hands a consumer stays pending on it), so this bounds how
/// long a stop waits for the read in flight.
const READ_WAIT_MAX: Duration = Duration::from_secs(2);

/// Where events are stored.
#[async_trait]
pub trait EventSink: Send + Sync + fmt::Debug {
    /// Stores the events idempotently (an `event_id` already stored for the
    /// device is skipped) in one transaction; returns how many were new.
    async fn store(&self, events: &[Event]) -> Result<u64, SinkError>;
}

/// Batch writer settings.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Most events per batch.
    pub batch_size: usize,
    /// Longest wait to fill a batch.
    pub batch_wait: Duration,
    /// First retry delay after a transient failure.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How often the janitor looks for entries of dead consumers.
    pub janitor_interval: Duration,
    /// Idle time after which another consumer's entries are taken over;
    /// longer than any legitimate batch.
    pub claim_idle: Duration,
    /// How often due dead letters are retried.
    pub dlq_interval: Duration,
    /// Dead-letter retry policy.
    pub dlq: DlqPolicy,
    /// Batches stored at the same time, each on its own database
    /// connection (at least 1). The rollup upserts take their rows in key
    /// order, so concurrent batches cannot deadlock on shared buckets.
    pub concurrency: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            batch_wait: Duration::from_millis(200),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            janitor_interval: Duration::from_secs(5),
            claim_idle: Duration::from_secs(120),
            dlq_interval: Duration::from_secs(1),
            dlq: DlqPolicy::default(),
            concurrency: 2,
        }
    }
}

/// The batch writer.
#[derive(Debug)]
pub struct BatchWriter {
    consumer: Arc<dyn QueueConsumer>,
    sink: Arc<dyn EventSink>,
    dead_letters: Arc<dyn DeadLetters>,
    config: WriterConfig,
}

/// The writer was stopped while retrying; the unacked entries stay in the
/// queue for the next start.
#[derive(Debug)]
struct Stopped;

impl BatchWriter {
    /// Assembles a writer.
    #[must_use]
    pub fn new(
        consumer: Arc<dyn QueueConsumer>,
        sink: Arc<dyn EventSink>,
        dead_letters: Arc<dyn DeadLetters>,
        config: WriterConfig,
    ) -> Self {
        Self {
            consumer,
            sink,
            dead_letters,
            config,
        }
    }

    /// Runs until `shutdown` is cancelled; the batches in hand are stored
    /// and acked before it returns (unless storage is down, in which case
    /// they stay in the queue).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let writer = Arc::new(self);
        let slots = Arc::new(Semaphore::new(writer.config.concurrency.max(1)));
        let stores = TaskTracker::new();
        let mut next_janitor = Instant::now();
        let mut next_dlq = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_janitor {
                next_janitor = Instant::now() + writer.config.janitor_interval;
                writer.janitor(&shutdown).await;
            }
            if Instant::now() >= next_dlq {
                next_dlq = Instant::now() + writer.config.dlq_interval;
                writer.retry_dead_letters().await;
            }
            // Read the next batch while earlier ones are being stored.
            let batch = writer.collect(&shutdown).await;
            if batch.is_empty() {
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (writer, shutdown) = (writer.clone(), shutdown.clone());
            stores.spawn(async move {
                // Stopped while storage is down: the entries stay pending
                // and are read again after the restart.
                let _ = writer.process(batch, &shutdown).await;
                drop(slot);
            });
        }
        stores.close();
        stores.wait().await;
    }

    async fn janitor(&self, shutdown: &CancellationToken) {
        match self
            .consumer
            .reclaim(self.config.claim_idle, self.config.batch_size)
            .await
        {
            Ok(batch) if !batch.is_empty() => {
                tracing::warn!(
                    entries = batch.len(),
                    "reclaimed entries of a dead consumer"
                );
                let _ = self.process(batch, shutdown).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "janitor could not reclaim"),
        }
    }

    async fn retry_dead_letters(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        match retry_due(&*self.dead_letters, &*self.sink, &self.config.dlq, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(stored = n, "dead letters stored on retry"),
            Err(e) => tracing::warn!(error = %e, "dead-letter retry failed"),
        }
    }

    async fn collect(&self, shutdown: &CancellationToken) -> Vec<Delivery> {
        let deadline = Instant::now() + self.config.batch_wait;
        let mut batch = Vec::new();
        while batch.len() < self.config.batch_size && !shutdown.is_cancelled() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let want = self.config.batch_size - batch.len();
            let wait = remaining.clamp(Duration::from_millis(1), READ_WAIT_MAX);
            // Never dropped in flight: entries a blocking read was handed
            // are this consumer's pending ones, and would wait for a
            // restart or the janitor. Stopping waits at most one read.
            match self.consumer.read(want, wait).await {
                Ok(more) => batch.extend(more),
                Err(e) => {
                    tracing::warn!(error = %e, "queue read failed");
                    tokio::time::sleep(self.config.backoff_initial).await;
                }
            }
            if remaining.is_zero() {
                break;
            }
        }
        batch
    }

    /// Stores and acks one batch in its `writer.batch` span.
    async fn process(
        &self,
        batch: Vec<Delivery>,
        shutdown: &CancellationToken,
    ) -> Result<(), Stopped> {
        let span = tracing::info_span!(
            "writer.batch",
            batch.size = batch.len(),
            batch.duration_ms = tracing::field::Empty
        );
        self.store_batch(batch, shutdown).instrument(span).await
    }

    async fn store_batch(
        &self,
        batch: Vec<Delivery>,
        shutdown: &CancellationToken,
    ) -> Result<(), Stopped> {
        let started = Instant::now();
        let (ids, events): (Vec<DeliveryId>, Vec<Event>) =
            batch.into_iter().map(|d| (d.id, d.event)).unzip();
        let inserted = self.store_isolating(&events, shutdown).await?;
        self.ack(&ids, shutdown).await?;
        metrics::histogram!("hse_devices_batch_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("hse_devices_events_stored_total").increment(inserted);
        let duration_ms = started.elapsed().as_millis() as u64;
        tracing::Span::current().record("batch.duration_ms", duration_ms);
        tracing::debug!(batch.inserted = inserted, "batch stored");
        Ok(())
    }

    async fn store_isolating(
        &self,
        events: &[Event],
        shutdown: &CancellationToken,
    ) -> Result<u64, Stopped> {
        let mut inserted = 0;
        let mut todo: Vec<Range<usize>> = Vec::with_capacity(16);
        todo.push(0..events.len());
        while let Some(range) = todo.pop() {
            match self
                .store_retrying(&events[range.clone()], shutdown)
                .await?
            {
                Ok(n) => inserted += n,
                Err(reason) if range.len() == 1 => {
                    self.dead_letter(&events[range.start], &reason, shutdown)
                        .await?;
                }
                Err(_) => {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            }
        }
        Ok(inserted)
    }

    /// Stores, retrying transient failures; a content refusal comes back as
    /// `Ok(Err(reason))`.
    async fn store_retrying(
        &self,
        events: &[Event],
        shutdown: &CancellationToken,
    ) -> Result<Result<u64, String>, Stopped> {
        let mut delay = self.config.backoff_initial;
        loop {
            match self.sink.store(events).await {
                Ok(n) => return Ok(Ok(n)),
                Err(SinkError::Content(reason)) => return Ok(Err(reason)),
                Err(SinkError::Transient(e)) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "storage unavailable; retrying");
                    self.pause(&mut delay, shutdown).await?;
                }
            }
        }
    }

    async fn dead_letter(
        &self,
        event: &Event,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), Stopped> {
        tracing::warn!(event.id = %event.event_id, device.id = %event.device_id, "poison event dead-lettered");
        metrics::counter!("hse_devices_dead_lettered_total").increment(1);
        let now = chrono::Utc::now().timestamp_millis();
        let first_retry = self.config.dlq.next_attempt_ms(now, 0);
        let mut delay = self.config.backoff_initial;
        while let Err(e) = self.dead_letters.add(event, reason, first_retry).await {
            tracing::warn!(error = %e, "dead-letter store unavailable; retrying");
            self.pause(&mut delay, shutdown).await?;
        }
        Ok(())
    }

    async fn ack(&self, ids: &[DeliveryId], shutdown: &CancellationToken) -> Result<(), Stopped> {
        let mut delay = self.config.backoff_initial;
        while let Err(e) = self.consumer.ack(ids).await {
            tracing::warn!(error = %e, "queue ack failed; retrying");
            self.pause(&mut delay, shutdown).await?;
        }
        Ok(())
    }

    async fn pause(
        &self,
        delay: &mut Duration,
        shutdown: &CancellationToken,
    ) -> Result<(), Stopped> {
        tokio::select! {
            () = shutdown.cancelled() => return Err(Stopped),
            () = tokio::time::sleep(*delay) => {}
        }
        *delay = (*delay * 2).min(self.config.backoff_max);
        Ok(())
    }
}

/// In-process sink: the embedded default and a test double whose failures
/// can be scripted.
#[derive(Debug, Default)]
pub struct MemorySink {
    inner: std::sync::Mutex<MemorySinkState>,
}

#[derive(Debug, Default)]
struct MemorySinkState {
    events: std::collections::HashMap<(hse_core::DeviceId, uuid::Uuid), Event>,
    transient_failures: u32,
    poison_type: Option<String>,
}

impl MemorySink {
    /// Empty.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` calls fail transiently.
    pub fn fail_transiently(&self, n: u32) {
        self.lock().transient_failures = n;
    }

    /// Batches holding an event of this type are refused for content
    /// (`None` lifts it, as a fix would).
    pub fn poison(&self, event_type: Option<&str>) {
        self.lock().poison_type = event_type.map(str::to_owned);
    }

    /// Stored events.
    #[must_use]
    pub fn stored(&self) -> Vec<Event> {
        self.lock().events.values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemorySinkState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl EventSink for MemorySink {
    async fn store(&self, events: &[Event]) -> Result<u64, SinkError> {
        let mut state = self.lock();
        if state.transient_failures > 0 {
            state.transient_failures -= 1;
            return Err(SinkError::Transient("scripted outage".into()));
        }
        if let Some(poison) = &state.poison_type
            && events.iter().any(|e| e.event_type.as_str() == poison)
        {
            return Err(SinkError::Content("scripted refusal".into()));
        }
        let mut inserted = 0;
        for event in events {
            let key = (event.device_id, event.event_id);
            if let std::collections::hash_map::Entry::Vacant(slot) = state.events.entry(key) {
                slot.insert(event.clone());
                inserted += 1;
            }
        }
        Ok(inserted)
    }
}

#[cfg(test)]
mod tests;
