//! hse-booking in the server: the [`Bookings`] service over the configured
//! store, and its background workers.
//!
//! With the `workers` role the server runs, on its task tracker and until
//! its shutdown token is cancelled:
//! - the stay worker (automatic check-in and check-out), a pass every
//!   `HSE_STAY_INTERVAL_MS`;
//! - the door-code programmer, sending codes to the locks through
//!   [`LockBridge`] over this node's [`Connections`](hse_devices::commands::Connections),
//!   except to locks of a suspended tenant ([`ActiveTenantsOnly`]);
//! - the notification dispatcher, with the channels configured by
//!   `HSE_WEBHOOK_*` and `HSE_SMTP_*`. With none configured it does not
//!   run, and notifications stay pending in the outbox until one is.
//!
//! Every worker is safe to run in several processes at once (claims and
//! state moves are conditional in the store).
//!
//! Door locks report `code_used` events; [`record_lock_event`] counts them
//! on their codes (whoever consumes device events calls it).

use std::sync::Arc;

use async_trait::async_trait;
use hse_booking::clock::SystemClock;
use hse_booking::codes::Attempt;
use hse_booking::lock::{LockProgrammer, ProgramCode};
use hse_booking::notification::ChannelKind;
use hse_booking::stays::StayWorker;
use hse_booking::{BookingError, Bookings, BookingsConfig, CodeProgrammer, Dispatcher, DoorCodeId};
use hse_core::{DeviceId, Target, Tenancy};
use hse_devices::Event;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backends::Backends;
use crate::config::Config;
use crate::lock_bridge::LockBridge;
use crate::state::AppState;

/// The booking service over the configured backends. Notifications go out
/// on the configured channels (email by default, kept pending until a
/// relay is configured).
#[must_use]
pub fn service(config: &Config, backends: &Backends) -> Bookings {
    Bookings::new(
        backends.booking_store.clone(),
        backends.tenancy.clone(),
        service_config(config),
    )
}

fn service_config(config: &Config) -> BookingsConfig {
    let mut channels = Vec::new();
    if config.smtp.is_some() {
        channels.push(ChannelKind::Email);
    }
    if config.webhook.is_some() {
        channels.push(ChannelKind::Webhook);
    }
    if channels.is_empty() {
        return BookingsConfig::default();
    }
    BookingsConfig {
        channels,
        ..BookingsConfig::default()
    }
}

/// The outbox dispatcher with the configured channels; `None` without any.
fn dispatcher(config: &Config, backends: &Backends) -> Option<Dispatcher> {
    let clock = Arc::new(SystemClock);
    let mut dispatcher = Dispatcher::new(backends.booking_store.clone(), clock);
    if let Some(smtp) = &config.smtp {
        dispatcher = dispatcher.with_channel(ChannelKind::Email, Arc::new(smtp.clone()));
    }
    if let Some(webhook) = &config.webhook {
        dispatcher = dispatcher.with_channel(ChannelKind::Webhook, Arc::new(webhook.clone()));
    }
    (config.smtp.is_some() || config.webhook.is_some()).then_some(dispatcher)
}

/// Spawns the booking workers on `tasks`; each stops when `shutdown` is
/// cancelled.
pub fn spawn_workers(
    config: &Config,
    state: &AppState,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let store = state.backends.booking_store.clone();
    let clock = Arc::new(SystemClock);
    let mut stays = StayWorker::new(store.clone(), clock.clone());
    stays.interval = config.stay_interval;
    tasks.spawn(stays.run_until_stopped(shutdown.clone().cancelled_owned()));
    // Through the command bus, so a lock connected to another node is
    // reached too (with one node it is the local connections).
    let bridge = Arc::new(LockBridge::new(state.devices.commands.clone()));
    let lock = Arc::new(ActiveTenantsOnly::new(bridge, state.tenancy.clone()));
    let programmer = CodeProgrammer::new(store, lock, clock);
    tasks.spawn(programmer.run_until_stopped(shutdown.clone().cancelled_owned()));
    match dispatcher(config, &state.backends) {
        Some(dispatcher) => {
            tasks.spawn(dispatcher.run_until_stopped(shutdown.clone().cancelled_owned()));
        }
        None => tracing::warn!(
            "no HSE_SMTP_ADDR or HSE_WEBHOOK_URL: booking notifications stay pending in the outbox"
        ),
    }
    tracing::info!("booking workers started: stays, door codes, notifications");
}

/// The door-code programmer's lock port, minus suspended tenants: a code
/// for a lock of a suspended organization or partner company is not
/// programmed. The attempt counts as unreachable, so the programmer
/// retries it with its backoff (capped at 10 minutes) and the code goes
/// out once the tenant is reinstated, if still due. Removals always go
/// out: they only take access away.
#[derive(Debug)]
pub struct ActiveTenantsOnly {
    inner: Arc<dyn LockProgrammer>,
    tenancy: Tenancy,
}

impl ActiveTenantsOnly {
    /// Wraps `inner`, asking `tenancy` about each lock's tenant.
    #[must_use]
    pub fn new(inner: Arc<dyn LockProgrammer>, tenancy: Tenancy) -> Self {
        Self { inner, tenancy }
    }

    /// Whether `device`'s tenant is suspended; a failed read counts as
    /// suspended for now (the attempt is retried).
    async fn suspended(&self, device: DeviceId) -> bool {
        let found = self.tenancy.locate(Target::Device(device)).await;
        let resource = match found {
            Ok(Some(resource)) => resource,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(device.id = %device, error = %e, "lock tenant unknown; code deferred");
                return true;
            }
        };
        match self.tenancy.suspension(&resource).await {
            Ok(None) => false,
            Ok(Some(suspended)) => {
                tracing::info!(device.id = %device, %suspended, "door code deferred: tenant suspended");
                true
            }
            Err(e) => {
                tracing::warn!(device.id = %device, error = %e, "lock tenant unknown; code deferred");
                true
            }
        }
    }
}

#[async_trait]
impl LockProgrammer for ActiveTenantsOnly {
    async fn program(&self, request: &ProgramCode<'_>) -> Attempt {
        if self.suspended(request.device).await {
            return Attempt::Unreachable;
        }
        self.inner.program(request).await
    }

    async fn remove(&self, device: DeviceId, slot: DoorCodeId) -> Attempt {
        self.inner.remove(device, slot).await
    }
}

/// Counts a lock's `code_used` event (metadata `{"code_id": "<uuid>"}`)
/// on its door code, which is retired once it reaches its maximum uses.
/// Returns whether a use was recorded: other event types, events without
/// a code id, and codes that are not that lock's are ignored.
///
/// # Errors
/// Storage failures, for the caller to retry.
pub async fn record_lock_event(bookings: &Bookings, event: &Event) -> Result<bool, BookingError> {
    if event.event_type.as_str() != "code_used" {
        return Ok(false);
    }
    let code = event
        .metadata
        .as_ref()
        .and_then(|m| m.get("code_id"))
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<DoorCodeId>().ok());
    let Some(code) = code else {
        tracing::debug!(device.id = %event.device_id, "code_used without a code_id");
        return Ok(false);
    };
    match bookings
        .record_code_use(event.device_id, code, chrono::Utc::now())
        .await
    {
        Ok(_) => Ok(true),
        Err(BookingError::NotFound { .. }) => {
            tracing::debug!(device.id = %event.device_id, code.id = %code, "code_used for an unknown code");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .expect("config")
    }

    #[test]
    fn notifications_go_out_on_the_configured_channels_only() {
        let none = config(&[]);
        assert_eq!(service_config(&none).channels, [ChannelKind::Email]);
        assert!(dispatcher(&none, &Backends::in_memory()).is_none());
        let webhook = config(&[
            ("HSE_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("HSE_WEBHOOK_SECRET", "0123456789abcdef"),
        ]);
        assert_eq!(service_config(&webhook).channels, [ChannelKind::Webhook]);
        assert!(dispatcher(&webhook, &Backends::in_memory()).is_some());
    }

    #[tokio::test]
    async fn workers_stop_when_the_server_shuts_down() {
        let config = config(&[]);
        let tasks = TaskTracker::new();
        let state = crate::server::services(&config, Backends::in_memory(), &tasks).unwrap();
        let shutdown = CancellationToken::new();
        spawn_workers(&config, &state, &tasks, &shutdown);
        drop(state);
        shutdown.cancel();
        tasks.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait())
            .await
            .expect("workers stopped");
    }
}
