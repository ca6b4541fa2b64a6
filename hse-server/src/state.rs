//! What every handler shares: the domain services over the configured
//! backends.

use std::sync::Arc;

use hse_auth::Authenticator;
use hse_auth::rate_limit::Quota;
use hse_booking::Bookings;
use hse_core::Tenancy;
use hse_devices::commands::Connections;

use crate::backends::Backends;

/// The application state: one [`Arc`] over the [`Services`], so the
/// per-request clone axum makes for every handler is one reference count,
/// not one per service (the benchmark profile showed the field-by-field
/// clone and drop at ~14 % of the API's CPU).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every handler.
    #[must_use]
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }

    /// The services to change before the state is shared (tests swap a
    /// quota or a service); copies them if the state is already shared.
    pub fn services_mut(&mut self) -> &mut Services {
        Arc::make_mut(&mut self.0)
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct Services {
    /// Connections, for health checks.
    pub backends: Backends,
    /// Tenancy, roles, users, onboarding.
    pub tenancy: Tenancy,
    /// Sign-in, tokens, API keys, rate limits.
    pub auth: Arc<Authenticator>,
    /// Requests per signed-in user (API keys have their own quota).
    pub user_quota: Quota,
    /// Guests, bookings, door codes and notifications.
    pub bookings: Bookings,
    /// Devices connected to this node and commands in flight: the one
    /// single-node command sender, shared by the device listeners and the
    /// door-code programmer.
    pub connections: Arc<Connections>,
    /// The device pipeline: state, events, commands, dead letters, sessions.
    pub devices: crate::devices::Devices,
}
