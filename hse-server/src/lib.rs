//! hse-server: the reference server self-hosters run.
//!
//! For now it assembles the backends (PostgreSQL and Redis, or the embedded
//! in-memory default), serves the health endpoints, and shuts down cleanly
//! on SIGTERM or Ctrl-C. By role it also runs the device listeners (TCP
//! and WebSocket), the ingest pipeline and the gRPC service ([`devices`]).
//!
//! # Layout
//! - [`config`]: `HSE_*` variables, validated at start-up.
//! - [`connections`]: the HTTP and gRPC listeners' connection caps and
//!   timeouts, and the HTTP accept loop.
//! - [`telemetry`]: the tracing subscriber (text or JSON).
//! - [`tls`]: TLS on the three listeners, and certificate reload.
//! - [`bootstrap`]: the first root account.
//! - [`backends`]: connections to PostgreSQL and Redis, and their checks.
//! - [`bookings`]: the booking service and its workers (check-in/out,
//!   door codes through [`lock_bridge`], notifications).
//! - [`devices`]: the device pipeline (queue, batch writer, state,
//!   dead letters, commands), the device listeners and the gRPC service.
//! - [`health`]: `/health/liveness` and `/health/readiness`.
//! - [`http`]: the HTTP API of `docs/API.md`, errors as problem+json.
//! - [`redis_durability`]: the start-up check of Redis's persistence
//!   settings (`HSE_REDIS_DURABILITY`).
//! - [`metrics`]: `/metrics` and the HTTP latency middleware.
//! - [`state`]: the services every handler shares.
//! - [`server`]: builds the router and runs it until stopped.

pub mod backends;
pub mod bookings;
pub mod bootstrap;
pub mod config;
pub mod connections;
pub mod devices;
pub mod health;
pub mod http;
pub mod lock_bridge;
pub mod metrics;
pub mod redis_durability;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod tls;

pub use config::Config;
pub use server::{Server, build, shutdown_signal};
