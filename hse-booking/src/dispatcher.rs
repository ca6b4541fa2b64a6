//! The outbox dispatcher: claims pending notifications, sends each through
//! the [`NotificationChannel`] of its kind, and records sent, a retry with
//! backoff, or failed after the last attempt.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use tracing::warn;

use crate::clock::Clock;
use crate::error::Result;
use crate::notification::{ChannelKind, Notification, after_delivery};
use crate::store::BookingStore;

/// Delivers notifications of one [`ChannelKind`].
#[async_trait]
pub trait NotificationChannel: Send + Sync + std::fmt::Debug {
    /// Sends one notification.
    ///
    /// # Errors
    /// A description of the failure (kept as `last_error`; no secrets).
    async fn send(&self, notification: &Notification) -> std::result::Result<(), String>;
}

/// Sends the outbox.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    store: Arc<dyn BookingStore>,
    channels: BTreeMap<ChannelKind, Arc<dyn NotificationChannel>>,
    clock: Arc<dyn Clock>,
    /// Attempts before a notification fails for good.
    pub max_attempts: u32,
    /// How long a claim holds; must exceed `batch` × the slowest channel's
    /// timeout, or another dispatcher may send a notification twice.
    pub lease: Duration,
    /// Notifications per pass.
    pub batch: u32,
    /// Pause between passes.
    pub interval: std::time::Duration,
}

impl Dispatcher {
    /// A dispatcher with no channels yet, 5 attempts, a 10 min lease,
    /// batches of 20 and 1 s passes.
    #[must_use]
    pub fn new(store: Arc<dyn BookingStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            channels: BTreeMap::new(),
            clock,
            max_attempts: 5,
            lease: Duration::minutes(10),
            batch: 20,
            interval: std::time::Duration::from_secs(1),
        }
    }

    /// Adds the channel for `kind`.
    #[must_use]
    pub fn with_channel(
        mut self,
        kind: ChannelKind,
        channel: Arc<dyn NotificationChannel>,
    ) -> Self {
        self.channels.insert(kind, channel);
        self
    }

    /// One pass; returns how many notifications were attempted.
    ///
    /// Runs in a `worker.job` span, `worker = "notifications"`.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(name = "worker.job", skip_all, fields(worker = "notifications"))]
    pub async fn run_once(&self) -> Result<usize> {
        let claimed = self
            .store
            .claim_notifications(self.clock.now(), self.lease, self.batch)
            .await?;
        let count = claimed.len();
        for n in claimed {
            let result = match self.channels.get(&n.channel) {
                Some(channel) => channel.send(&n).await,
                None => Err(format!("no {} channel configured", n.channel)),
            };
            if let Err(e) = &result {
                warn!(notification.id = %n.id, channel = %n.channel, error = %e, "notification not delivered");
            }
            let next = after_delivery(&n, result, self.clock.now(), self.max_attempts);
            self.store.finish_notification(&next).await?;
        }
        Ok(count)
    }

    /// Runs passes until `stop` completes.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.run_once().await {
                warn!(error = %e, "dispatch pass failed");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}
