//! The entry of the pipeline that every protocol adapter uses.
//!
//! A protocol adapter (the line protocol over TCP or WebSocket here; MQTT or
//! a vendor format later) turns its input into validated [`Event`]s and calls
//! [`Ingest::submit`]; it acks its device only when that returns `Ok`. The
//! pipeline behind (queue, batch writer, storage, live feed) does not know
//! which protocol an event came by.
//!
//! Metrics: `hse_devices_events_enqueued_total`,
//! `hse_devices_events_refused_total{reason}`, `hse_devices_queue_backlog`.

use std::fmt;
use std::sync::Arc;

use crate::error::{ErrorCode, QueueError};
use crate::feed::ChangeFeed;
use crate::model::Event;
use crate::queue::EventQueue;

/// Why events were not accepted; the device should retry later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The queue's backlog is past the high-water mark.
    #[error("overloaded")]
    Overloaded,
    /// The queue could not be reached.
    #[error("queue unavailable")]
    Unavailable,
}

impl IngestError {
    /// The `nack` code for the device.
    #[must_use]
    pub fn code(self) -> ErrorCode {
        match self {
            Self::Overloaded => ErrorCode::Overloaded,
            Self::Unavailable => ErrorCode::Unavailable,
        }
    }
}

/// Enqueues events durably and publishes them to live subscribers.
#[derive(Clone)]
pub struct Ingest {
    queue: Arc<dyn EventQueue>,
    feed: Arc<ChangeFeed>,
    high_water: u64,
    publish_locally: bool,
}

impl fmt::Debug for Ingest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ingest")
            .field("high_water", &self.high_water)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Ingest into `queue`, refusing new events while its backlog is at or
    /// past `high_water` entries.
    #[must_use]
    pub fn new(queue: Arc<dyn EventQueue>, feed: Arc<ChangeFeed>, high_water: u64) -> Self {
        Self {
            queue,
            feed,
            high_water,
            publish_locally: true,
        }
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

    /// Durably enqueues `events`, then publishes them to the live feed.
    ///
    /// # Errors
    /// [`IngestError::Overloaded`] past the high-water mark or when the
    /// queue is full; [`IngestError::Unavailable`] when it cannot be
    /// reached. Nothing was enqueued then... or, if the connection broke
    /// after the write, possibly everything: the device retries with the
    /// same ids and storage deduplicates.
    pub async fn submit(&self, events: &[Event]) -> Result<(), IngestError> {
        let backlog = self.queue.backlog();
        metrics::gauge!("hse_devices_queue_backlog").set(backlog as f64);
        if backlog >= self.high_water {
            metrics::counter!("hse_devices_events_refused_total", "reason" => "overloaded")
                .increment(events.len() as u64);
            return Err(IngestError::Overloaded);
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
            Err(QueueError::Full) => Err(IngestError::Overloaded),
            Err(e) => {
                tracing::warn!(error = %e, events = events.len(), "enqueue failed");
                Err(IngestError::Unavailable)
            }
        }
    }
}
