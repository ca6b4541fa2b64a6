//! Devices for HSE: the device wire protocol, the zero-loss ingest
//! pipeline, time series with rollups, live state and the gRPC service.
//!
//! Devices connect over TCP (or WebSocket through the server) and speak the
//! line protocol of `docs/PROTOCOL.md`. A session acks a frame only once its
//! events are durably enqueued; the batch writer stores them idempotently
//! and acks the queue only after the database commit, so no acknowledged
//! event is lost or duplicated, whatever crashes.
//!
//! # Layout
//! - [`model`], [`codec`]: events and the wire protocol (parse, don't
//!   validate); [`codec::EventDraft::new`] is the one validated event
//!   constructor every transport uses.
//! - [`transport`], [`session`], [`tcp`]: one session implementation for TCP
//!   and WebSocket; hello, acks, heartbeat, replacement, commands.
//! - [`ingest`]: the entry every protocol adapter uses; [`queue`]: the
//!   durable hand-off; [`writer`]: the batch writer; [`dlq`]: dead letters;
//!   [`groups`]: consumer groups other modules follow the events with.
//! - [`directory`], [`state`], [`feed`], [`commands`], [`history`]: device
//!   credentials, current state, live changes, commands in flight, reads.
//! - [`breaker`]: the circuit breaker of the gRPC client.
//! - `redis`, `bus` and `cache` (feature `redis`), `postgres` (feature `postgres`),
//!   `grpc` and `client` (feature `grpc`): adapters, the tonic service and
//!   its Rust client.
//!
//! # Wiring a node
//! 1. Queue and state: `redis::RedisQueue` + `redis::RedisState` (or
//!    [`queue::MemoryQueue`] with [`state::MemoryState`] embedded).
//! 2. [`ingest::Ingest`] over the queue and a [`feed::ChangeFeed`], with
//!    [`ingest::Backpressure`] (the storage-lag bound, a high-water mark).
//!    With several nodes:
//!    `RedisQueue::with_change_stream`, `Ingest::relayed` and a
//!    `redis::ChangeRelay` per node, so every feed sees every node's events.
//! 3. [`session::SessionContext`] (a [`directory::DeviceDirectory`], e.g.
//!    [`directory::TenancyDirectory`] over hse-core's store) and
//!    [`tcp::run_until_stopped`]; the WebSocket handler calls
//!    [`session::run_session`] with [`transport::TextFrames`] and
//!    [`transport::ChannelWriter`].
//! 4. [`writer::BatchWriter`] with `redis::RedisConsumer`,
//!    `postgres::PgEventStore` and `redis::RedisDeadLetters`, plus
//!    `PgEventStore::run_maintenance_until_stopped` for partitions.
//! 5. `grpc::DevicesService` with [`commands::Connections`] (one node) or
//!    `bus::CommandBus` (several) and the store as [`history::EventHistory`].
//!
//! # Example
//! ```
//! use hse_devices::codec::{decode, Inbound, Limits};
//!
//! let limits = Limits { now_ms: 1_764_288_000_000, retention_ms: 86_400_000 };
//! let frame = br#"{"type":"event","seq":1,"event_type":"temperature","value":21.5}"#;
//! let Ok(Inbound::Events { seq, events }) = decode(frame, &limits) else { panic!() };
//! assert_eq!((seq, events[0].value()), (1, Some(21.5)));
//! ```

pub mod breaker;
pub mod codec;
pub mod commands;
pub mod directory;
pub mod dlq;

pub mod error;
pub mod feed;
pub mod groups;
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
#[cfg(feature = "redis")]
pub mod cache;
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
