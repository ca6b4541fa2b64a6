//! Lock `code_used` events reach booking: once a batch is stored, each
//! `code_used` event in it (metadata `{"code_id": "<door code id>"}`)
//! counts one use of that code through
//! [`record_lock_event`](crate::bookings::record_lock_event), which
//! retires a code that reached its usage cap.
//!
//! The count follows the commit, so an event a device never got
//! acknowledged for is never counted. A batch redelivered after a crash
//! between the commit and the queue ack, or a device retrying with the
//! same `event_id`, is recognised by the event id among the last
//! [`REMEMBERED`] counted in this process. A use the booking store cannot
//! record (it is down) is logged, not retried: the event itself is stored
//! and can be re-read.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use hse_booking::Bookings;
use hse_devices::SinkError;
use hse_devices::model::Event;
use hse_devices::writer::EventSink;
use uuid::Uuid;

/// The event type door locks report a used code with.
pub const CODE_USED: &str = "code_used";
/// Counted event ids remembered to skip redeliveries.
pub const REMEMBERED: usize = 10_000;

/// An [`EventSink`] that tells booking about used codes after storing.
#[derive(Debug)]
pub struct CodeUseSink {
    inner: Arc<dyn EventSink>,
    bookings: Bookings,
    counted: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<Uuid>,
    ids: HashSet<Uuid>,
}

impl Recent {
    /// Remembers `id`; `false` if it was already there.
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

impl CodeUseSink {
    /// Wraps `inner`, reporting to `bookings`.
    #[must_use]
    pub fn new(inner: Arc<dyn EventSink>, bookings: Bookings) -> Self {
        Self {
            inner,
            bookings,
            counted: Mutex::new(Recent::default()),
        }
    }

    fn first_time(&self, id: Uuid) -> bool {
        self.counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id)
    }

    async fn report(&self, event: &Event) {
        if !self.first_time(event.event_id) {
            return;
        }
        match crate::bookings::record_lock_event(&self.bookings, event).await {
            Ok(true) => metrics::counter!("hse_devices_code_uses_total").increment(1),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(device.id = %event.device_id, event.id = %event.event_id, error = %e, "code use not recorded");
            }
        }
    }
}

#[async_trait]
impl EventSink for CodeUseSink {
    async fn store(&self, events: &[Event]) -> Result<u64, SinkError> {
        let inserted = self.inner.store(events).await?;
        for event in events.iter().filter(|e| e.event_type.as_str() == CODE_USED) {
            self.report(event).await;
        }
        Ok(inserted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_counts_once_and_old_ids_are_forgotten() {
        let mut recent = Recent::default();
        let first = Uuid::now_v7();
        assert!(recent.insert(first));
        assert!(!recent.insert(first));
        for _ in 0..REMEMBERED {
            recent.insert(Uuid::now_v7());
        }
        assert!(recent.insert(first), "forgotten after {REMEMBERED} others");
        assert_eq!(recent.ids.len(), recent.order.len());
    }
}
