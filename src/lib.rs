//! HSE: the backend of a property and IoT platform, as a Rust SDK.
//!
//! This facade re-exports the HSE crates under short names, so a partner's
//! service can depend on `hse` alone:
//!
//! - [`core`]: tenancy, roles and permissions, scopes, onboarding.
//! - [`auth`]: passwords, tokens, API keys, rate limits.
//! - [`booking`]: guests, bookings, door-lock codes.
//! - [`devices`]: device protocol, ingest, time series, live state.

pub use hse_auth as auth;
pub use hse_booking as booking;
pub use hse_core as core;
pub use hse_devices as devices;
