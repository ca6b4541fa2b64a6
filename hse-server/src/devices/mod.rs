//! hse-devices in the server: the ingest pipeline, assembled over the
//! configured backends, and the listeners and workers of each role.
//!
//! | piece | embedded (no Redis) | with `HSE_REDIS_URL` |
//! |---|---|---|
//! | queue | in-process ([`MemoryQueue`]) | Redis Streams, consumer group `writers` |
//! | current state | in-process | Redis hashes |
//! | dead letters | in-process | Redis streams |
//! | commands | this node's [`Connections`] | [`CommandBus`] (this node first, then the others) |
//! | event store | PostgreSQL with `HSE_DATABASE_URL`, else in memory | same |
//!
//! Devices authenticate at `hello` against the secret hash hse-core stored
//! when the device was registered ([`TenancyDirectory`]). Stored lock
//! `code_used` events reach booking through [`code_use::CodeUseSink`].
//!
//! Roles ([`start`]): `ingest` runs the device TCP listener, the WebSocket
//! sessions (route in `http::devices`) and the batch writer with its
//! dead-letter retries and janitor; `grpc` serves `proto/devices.proto`;
//! `workers` runs partition maintenance. On shutdown the listener stops
//! accepting, sessions answer what they hold, the in-process queue is
//! drained into storage, and the writer stores and acknowledges its last
//! batch: nothing a device saw acknowledged is lost. With Redis, what the
//! stream still holds is stored by the next start of the same
//! `HSE_NODE_NAME` (or by another node's writer).
//!
//! # The gRPC service is internal
//! `proto/devices.proto` is the seed's service-to-service contract: it
//! carries no credentials and is not tenant-scoped (a subscriber may
//! follow every device). Keep `HSE_GRPC_ADDR` on loopback (the default)
//! or a private network; tenants use the HTTP routes, which authorize
//! every device.

pub mod code_use;
pub mod gauges;
pub mod grpc;
mod roles;
pub mod websocket;

pub use roles::{Bound, start};

use std::sync::Arc;

use anyhow::Context;
use hse_booking::Bookings;
use hse_devices::bus::CommandBus;
use hse_devices::cache::{CachedHistory, InvalidatingSink, RollupCache};
use hse_devices::commands::{CommandSender, Connections};
use hse_devices::directory::TenancyDirectory;
use hse_devices::dlq::{DeadLetters, MemoryDeadLetters};
use hse_devices::feed::ChangeFeed;
use hse_devices::history::EventHistory;
use hse_devices::ingest::{Backpressure, Ingest};
use hse_devices::postgres::PgEventStore;
use hse_devices::queue::{EventQueue, MemoryQueue, QueueConsumer};
use hse_devices::redis::{Keys, RedisConsumer, RedisDeadLetters, RedisQueue, RedisState};
use hse_devices::session::{SessionConfig, SessionContext};
use hse_devices::state::{MemoryState, StateStore};
use hse_devices::writer::{BatchWriter, EventSink, MemorySink, WriterConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backends::Backends;
use crate::config::Config;

/// Entries the in-process queue holds before it refuses.
const MEMORY_QUEUE_CAPACITY: usize = 200_000;
/// Backlog past which ingest answers `overloaded` (in-process queue).
const MEMORY_HIGH_WATER: u64 = 150_000;
/// Backlog past which ingest answers `overloaded` (Redis stream); a safety
/// net: storage lag (`HSE_INGEST_MAX_LAG_MS`) answers `overloaded` first.
const REDIS_HIGH_WATER: u64 = 2_000_000;
/// Changes kept for subscribers that resume.
const FEED_CAPACITY: usize = 10_000;
/// Changes kept in the Redis change stream relayed to every node.
const CHANGE_STREAM_KEEP: usize = 100_000;

/// The device pipeline's handles, shared by the HTTP handlers, the
/// WebSocket sessions and the background tasks. Cheap to clone.
#[derive(Clone)]
pub struct Devices {
    /// Sessions on this node; the same registry booking's lock
    /// programmer sends door codes through.
    pub connections: Arc<Connections>,
    /// Commands to a device wherever it is connected.
    pub commands: Arc<dyn CommandSender>,
    /// The entry of the pipeline (and its live feed).
    pub ingest: Ingest,
    /// Current device state.
    pub state: Arc<dyn StateStore>,
    /// Stored events and rollups.
    pub history: Arc<dyn EventHistory>,
    /// Events storage refused, for operators.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Where events are stored (the batch writer's and replay's sink).
    pub sink: Arc<dyn EventSink>,
    /// What every device session shares (WebSocket and TCP).
    pub sessions: Arc<SessionContext>,
    /// WebSocket sessions, waited for on shutdown.
    pub session_tasks: TaskTracker,
    queue: Arc<dyn EventQueue>,
    consumer: Arc<dyn QueueConsumer>,
    event_store: Option<Arc<PgEventStore>>,
    durable_queue: bool,
    /// Redis, when the live feed is relayed through its change stream.
    relay: Option<(redis::Client, Keys)>,
    /// The Redis events stream, to measure its length.
    stream: Option<(redis::aio::ConnectionManager, String)>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("connected", &self.connections.len())
            .field("durable_queue", &self.durable_queue)
            .finish_non_exhaustive()
    }
}

/// The storage side over the configured database: what the writer stores
/// into, and what reads come from.
struct Storage {
    sink: Arc<dyn EventSink>,
    history: Arc<dyn EventHistory>,
    event_store: Option<Arc<PgEventStore>>,
}

impl Storage {
    fn of(backends: &Backends) -> Self {
        match &backends.postgres {
            Some(pool) => {
                let store = Arc::new(PgEventStore::new(pool.clone()));
                Self {
                    sink: store.clone(),
                    history: store.clone(),
                    event_store: Some(store),
                }
            }
            None => {
                let sink = Arc::new(MemorySink::new());
                Self {
                    sink: sink.clone(),
                    history: sink,
                    event_store: None,
                }
            }
        }
    }
}

/// The parts that differ between the embedded and the Redis pipeline.
struct Parts {
    queue: Arc<dyn EventQueue>,
    consumer: Arc<dyn QueueConsumer>,
    state: Arc<dyn StateStore>,
    dead_letters: Arc<dyn DeadLetters>,
    commands: Option<Arc<dyn CommandSender>>,
    relay: Option<(redis::Client, Keys)>,
    high_water: u64,
    /// `HSE_INGEST_MAX_LAG_MS`.
    max_lag: std::time::Duration,
    durable_queue: bool,
    session: SessionConfig,
}

impl Devices {
    /// The embedded pipeline: in-process queue, state and dead letters,
    /// events stored in PostgreSQL when configured (else in memory).
    /// `connections` is the node's registry (booking's locks use it too).
    #[must_use]
    pub fn embedded(
        config: &Config,
        backends: &Backends,
        connections: Arc<Connections>,
        bookings: Bookings,
    ) -> Self {
        let state = Arc::new(MemoryState::new());
        let queue = MemoryQueue::bounded(
            MEMORY_QUEUE_CAPACITY,
            config.ingest.memory_queue_bytes,
            Some(state.clone()),
        );
        let consumer = Arc::new(queue.consumer(&config.node_name));
        let parts = Parts {
            queue,
            consumer,
            state,
            dead_letters: Arc::new(MemoryDeadLetters::new()),
            commands: None,
            relay: None,
            high_water: MEMORY_HIGH_WATER,
            max_lag: config.ingest.max_lag,
            durable_queue: false,
            session: session_config(config),
        };
        Self::assemble(
            backends,
            connections,
            bookings,
            parts,
            Storage::of(backends),
        )
    }

    /// The pipeline on Redis (queue, state, dead letters, commands across
    /// nodes, cached rollups) when `HSE_REDIS_URL` is set, else
    /// [`Devices::embedded`].
    ///
    /// # Errors
    /// When Redis cannot be reached or its stream set up.
    pub async fn connect(
        config: &Config,
        backends: &Backends,
        connections: Arc<Connections>,
        bookings: Bookings,
    ) -> anyhow::Result<Self> {
        let (Some(url), Some(conn)) = (&config.redis_url, &backends.redis) else {
            return Ok(Self::embedded(config, backends, connections, bookings));
        };
        let client =
            redis::Client::open(url.expose()).context("HSE_REDIS_URL: not a valid Redis URL")?;
        let keys = Keys::new(&config.redis_prefix);
        let queue = RedisQueue::new(&client, keys.clone())
            .await
            .context("HSE_REDIS_URL: cannot set up the device event stream")?
            .with_change_stream(CHANGE_STREAM_KEEP)
            .with_enqueue_timeout(config.ingest.enqueue_timeout);
        let consumer = RedisConsumer::new(&client, keys.clone(), &config.node_name)
            .await
            .context("HSE_REDIS_URL: cannot open the batch writer's connection")?;
        let bus = CommandBus::start(
            &client,
            conn.clone(),
            keys.prefix(),
            &node_id(config),
            connections.clone(),
        )
        .await
        .context("HSE_REDIS_URL: cannot join the command bus")?;
        let parts = Parts {
            queue: Arc::new(queue),
            consumer: Arc::new(consumer),
            state: Arc::new(RedisState::new(conn.clone(), keys.clone())),
            dead_letters: Arc::new(RedisDeadLetters::new(conn.clone(), keys.clone())),
            commands: Some(bus),
            relay: Some((client, keys.clone())),
            high_water: REDIS_HIGH_WATER,
            max_lag: config.ingest.max_lag,
            durable_queue: true,
            session: session_config(config),
        };
        let plain = Storage::of(backends);
        let cache = RollupCache::new(conn.clone(), &keys);
        let storage = Storage {
            sink: Arc::new(InvalidatingSink::new(plain.sink, cache.clone())),
            history: Arc::new(CachedHistory::new(plain.history, cache)),
            event_store: plain.event_store,
        };
        Ok(Self::assemble(
            backends,
            connections,
            bookings,
            parts,
            storage,
        ))
    }

    fn assemble(
        backends: &Backends,
        connections: Arc<Connections>,
        bookings: Bookings,
        parts: Parts,
        Storage {
            sink,
            history,
            event_store,
        }: Storage,
    ) -> Self {
        let feed = ChangeFeed::new(FEED_CAPACITY);
        let mut ingest = Ingest::new(parts.queue.clone(), feed, parts.high_water)
            .with_backpressure(Backpressure {
                max_lag: parts.max_lag,
                high_water: parts.high_water,
                ..Backpressure::default()
            });
        if parts.relay.is_some() {
            ingest = ingest.relayed();
        }
        let sink: Arc<dyn EventSink> = Arc::new(code_use::CodeUseSink::new(sink, bookings));
        let sessions = Arc::new(SessionContext {
            directory: Arc::new(TenancyDirectory::new(backends.tenancy.clone())),
            ingest: ingest.clone(),
            connections: connections.clone(),
            state: parts.state.clone(),
            config: parts.session,
            shutdown: CancellationToken::new(),
        });
        let commands = parts.commands.unwrap_or_else(|| connections.clone());
        Self {
            connections,
            commands,
            ingest,
            state: parts.state,
            history,
            dead_letters: parts.dead_letters,
            sink,
            sessions,
            session_tasks: TaskTracker::new(),
            queue: parts.queue,
            consumer: parts.consumer,
            event_store,
            durable_queue: parts.durable_queue,
            stream: parts
                .relay
                .as_ref()
                .zip(backends.redis.clone())
                .map(|((_, keys), conn)| (conn, keys.events())),
            relay: parts.relay,
        }
    }

    /// Entries enqueued and not yet stored (last known value).
    #[must_use]
    pub fn backlog(&self) -> u64 {
        self.queue.backlog()
    }

    /// Events in the queue now, not yet stored: the Redis stream's length
    /// (asked; stored entries are trimmed from it at each ack, so it counts
    /// what is waiting plus at most the batches acked above a pending one),
    /// else the in-process queue's.
    pub async fn queue_length(&self) -> u64 {
        if let Some((conn, key)) = &self.stream {
            let mut conn = conn.clone();
            let len: Result<u64, redis::RedisError> =
                redis::AsyncCommands::xlen(&mut conn, key).await;
            if let Ok(len) = len {
                return len;
            }
        }
        self.backlog()
    }

    /// A batch writer from this pipeline's queue into its storage.
    #[must_use]
    pub fn writer(&self, config: WriterConfig) -> BatchWriter {
        BatchWriter::new(
            self.consumer.clone(),
            self.sink.clone(),
            self.dead_letters.clone(),
            config,
        )
    }
}

/// The device sessions' settings: the defaults, with the `hello` deadline
/// of `HSE_DEVICE_HELLO_TIMEOUT_MS`.
fn session_config(config: &Config) -> SessionConfig {
    SessionConfig {
        hello_timeout: config.device_hello_timeout,
        ..SessionConfig::default()
    }
}

/// A name unique to this process on the command bus (replies come back
/// to it), derived from the node name.
fn node_id(config: &Config) -> String {
    format!("{}:{}", config.node_name, uuid::Uuid::now_v7())
}
