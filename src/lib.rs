//! HSE: the backend of a property and IoT platform, as a Rust SDK.
//!
//! This facade re-exports the HSE crates under short names, so a partner's
//! service can depend on `hse` alone:
//!
//! - [`core`]: tenancy, roles and permissions, scopes, onboarding.
//! - [`auth`]: passwords, tokens, API keys, rate limits.
//! - [`booking`]: guests, bookings, door-lock codes.
//! - [`devices`]: device protocol, ingest, time series, live state.
//!
//! # Features
//! Each forwards to the crates that have it; none is on by default.
//!
//! | feature | what it adds |
//! |---|---|
//! | `postgres` | `hse::core::postgres`, `hse::auth::postgres`, `hse::booking::postgres`, `hse::devices::postgres` (stores and migrations), and `hse::sqlx` |
//! | `redis` | `hse::auth::redis` (rate limits, sign-in throttle), `hse::devices::redis` (queue, state, dead letters), and `hse::redis` |
//! | `grpc` | `hse::devices::grpc` and `hse::devices::client` |
//! | `openapi` | OpenAPI schemas of the model types |
//! | `full` | all of the above |
//!
//! # Where to start
//! A service holds a [`core::Tenancy`] (the tenant tree and who may do
//! what) and a [`booking::Bookings`] over stores: the memory ones
//! ([`core::memory::MemoryTenancyStore`], [`booking::MemoryBookingStore`]) to try it, the
//! PostgreSQL ones in production. Every call takes a [`core::Principal`],
//! the caller; the very first one is the platform's root account, stored
//! once and then loaded like any user:
//!
//! ```
//! use std::sync::Arc;
//!
//! use chrono::Utc;
//! use hse::booking::{Bookings, BookingsConfig};
//! use hse::core::value::Email;
//! use hse::core::{NewOrganization, NewUser, Scope, SystemRole, Tenancy, TenancyStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let store: Arc<dyn TenancyStore> = Arc::new(hse::core::MemoryTenancyStore::new());
//! let tenancy = Tenancy::new(store.clone());
//! let bookings = Bookings::new(
//!     Arc::new(hse::booking::MemoryBookingStore::new()),
//!     store.clone(),
//!     BookingsConfig::default(),
//! );
//!
//! // The first principal: a root account, inserted once at the platform
//! // scope (hse-server's `bootstrap-root` does the same), then loaded.
//! let root = NewUser {
//!     email: Email::parse("root@partner.example")?,
//!     first_name: "Root".into(),
//!     last_name: String::new(),
//!     role_id: SystemRole::Root.id(),
//!     partner_company_id: None,
//!     organization_id: None,
//! }
//! .build(None, true, Utc::now())?;
//! store.insert_user(&Scope::Platform, &root, None).await?;
//! let root = tenancy.principal(root.id).await?;
//!
//! let hotels = NewOrganization {
//!     name: "Hoteles del Sol".into(),
//!     ..Default::default()
//! };
//! let org = tenancy.create_organization(&root, hotels).await?;
//! assert_eq!(org.name, "Hoteles del Sol");
//! # let _ = bookings;
//! # Ok(())
//! # }
//! ```
//!
//! The whole story (a hotel, a room and its lock, a guest, a booking, a
//! refused overlap, a door code) is `examples/embed_sdk.rs` (`cargo run
//! --example embed_sdk`); the same on PostgreSQL and Redis is
//! `examples/embed_postgres.rs`.

pub use hse_auth as auth;
pub use hse_booking as booking;
pub use hse_core as core;
pub use hse_devices as devices;

/// The `sqlx` crate the PostgreSQL adapters take (`hse::sqlx::PgPool`).
#[cfg(feature = "postgres")]
pub use sqlx;

/// The `redis` crate the Redis adapters take
/// (`hse::redis::aio::ConnectionManager`).
#[cfg(feature = "redis")]
pub use redis;
