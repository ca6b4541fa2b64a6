//! What every handler shares: the domain services over the configured
//! backends.

use std::sync::Arc;

use hse_auth::Authenticator;
use hse_auth::rate_limit::Quota;
use hse_booking::Bookings;
use hse_core::Tenancy;
use hse_devices::commands::Connections;

use crate::backends::Backends;

/// The application state, cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
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
