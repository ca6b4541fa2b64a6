//! Devices for HSE: the device wire protocol, the zero-loss ingest
//! pipeline, time series with rollups, live state and the gRPC service.
//!
//! Devices connect over TCP (or WebSocket through the server) and speak the
//! line protocol of `PROTOCOL.md`. A session acks a frame only once its
//! events are durably enqueued; the batch writer stores them idempotently
//! and acks the queue only after the database commit, so no acknowledged
//! event is lost or duplicated, whatever crashes.
//!
//! # Layout
//! - [`model`], [`codec`]: events and the wire protocol (parse, don't validate).
//! - [`transport`], [`session`], [`tcp`]: one session implementation for TCP
//!   and WebSocket; hello, acks, heartbeat, replacement, commands.
//! - [`ingest`]: the entry every protocol adapter uses; [`queue`]: the
//!   durable hand-off; [`writer`]: the batch writer; [`dlq`]: dead letters.
//! - [`directory`], [`state`], [`feed`], [`commands`]: device credentials,
//!   current state, live changes, commands in flight.
//! - `redis` (feature `redis`), `postgres` (feature `postgres`), `grpc`
//!   (feature `grpc`): the adapters and the tonic service.
//!
//! # Example
//! ```
//! use hse_devices::codec::{decode, Inbound, Limits};
//!
//! let limits = Limits { now_ms: 1_764_288_000_000, retention_ms: 86_400_000 };
//! let frame = br#"{"type":"event","seq":1,"event_type":"temperature","value":21.5}"#;
//! let Ok(Inbound::Events { seq, events }) = decode(frame, &limits) else { panic!() };
//! assert_eq!((seq, events[0].value), (1, Some(21.5)));
//! ```

pub mod breaker;
pub mod codec;
pub mod commands;
pub mod directory;
pub mod dlq;

pub mod error;
pub mod feed;
pub mod history;
pub mod ingest;
pub mod model;
pub mod queue;
pub mod session;
pub mod state;
pub mod tcp;
pub mod transport;
pub mod writer;

#[cfg(feature = "redis")]
pub mod bus;
#[cfg(feature = "grpc")]
pub mod client;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

pub use error::{ErrorCode, Invalid, QueueError, SinkError};
pub use model::{Event, EventType};
