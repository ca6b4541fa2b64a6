//! Redis adapters (feature `redis`): the ingest queue on Redis Streams, the
//! dead-letter streams and the current device state.
//!
//! Keys, all under a configurable prefix (so tests and tenants can share a
//! server): `{p}events` (stream, consumer group `writers`),
//! `{p}state:{device_id}` (hash), `{p}dlq` and `{p}dlq:permanent` (streams).
//!
//! An enqueue is one pipelined round trip on the queue's own connection
//! (`RedisQueue`, in `queue`: what its failures mean, and the storage lag
//! back-pressure follows). Entries leave the stream only after the batch writer's
//! commit: one script acks them and trims the stream below the oldest entry
//! any consumer group still needs (`XTRIM MINID`, which frees whole stream nodes, where the
//! `XDEL` of a thousand ids kept Redis busy ~0.5 ms while every device's
//! `XADD` waited). Reads take at most [`READ_CHUNK`] entries per command for
//! the same reason. Blocking reads use a dedicated connection, so they
//! never stall the producers' multiplexed one.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use hse_core::DeviceId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncCommands, Client, RedisError, Value};

use crate::dlq::{DeadLetter, DeadLetters};
use crate::error::QueueError;
use crate::model::Event;
use crate::queue::{Delivery, DeliveryId, QueueConsumer};
use crate::state::{Connection, DeviceState, LastEvent, StateStore};

mod dead_letters;
mod queue;
mod trim;

use trim::ACK_AND_TRIM;

pub use dead_letters::RedisDeadLetters;
pub use queue::{DEFAULT_ENQUEUE_TIMEOUT, RedisQueue};

/// The consumer group of the batch writers.
pub const GROUP: &str = crate::groups::WRITERS_GROUP;
/// Longest single blocking read.
const MAX_BLOCK: Duration = Duration::from_secs(2);
/// Most entries one `XREADGROUP` returns. Redis runs one command at a time,
/// and serialising 1000 entries took 0.6–0.7 ms during which every
/// device's `XADD` (the acknowledgement path) waited; a writer's batch is
/// gathered from several reads instead.
pub const READ_CHUNK: usize = 250;

fn unavailable(e: RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// The key names under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `hse:`).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix itself.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The events stream.
    #[must_use]
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// The change stream relayed to every node's live feed.
    #[must_use]
    pub fn changes(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// A device's state hash.
    #[must_use]
    pub fn state(&self, device_id: DeviceId) -> String {
        format!("{}state:{device_id}", self.prefix)
    }

    /// The marker of an event already dead-lettered.
    #[must_use]
    pub fn dlq_event(&self, device_id: DeviceId, event_id: uuid::Uuid) -> String {
        format!("{}dlq:event:{device_id}:{event_id}", self.prefix)
    }

    /// The retrying (`false`) or permanent (`true`) dead-letter stream.
    #[must_use]
    pub fn dlq(&self, permanent: bool) -> String {
        if permanent {
            format!("{}dlq:permanent", self.prefix)
        } else {
            format!("{}dlq", self.prefix)
        }
    }
}

/// A connection for producers and readers that never block.
///
/// # Errors
/// [`QueueError::Unavailable`] if Redis cannot be reached.
pub async fn connect(
    client: &Client,
    response_timeout: Duration,
) -> Result<ConnectionManager, QueueError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)));
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(unavailable)
}

/// One batch writer's view of the consumer group.
#[derive(Debug)]
pub struct RedisConsumer {
    /// For the blocking reads only.
    conn: ConnectionManager,
    /// For acks, claims and the rest, so they never queue behind a
    /// blocking read (the writer acks one batch while it reads the next).
    control: ConnectionManager,
    keys: Keys,
    /// The consumer group: [`GROUP`], or a module's.
    group: String,
    name: String,
    /// Where the scan of this consumer's own pending entries stands;
    /// `None` once it is done.
    own_cursor: std::sync::Mutex<Option<String>>,
    /// How long another consumer may go without reading before it counts
    /// as dead: its entries are taken over then, and the consumer removed.
    dead_after: Duration,
}

/// The default of [`RedisConsumer::with_dead_after`]: a live writer reads
/// at least once per blocking read (2 s) plus one batch's store.
pub const DEAD_CONSUMER_AFTER: Duration = Duration::from_secs(15);

/// Removes consumer `ARGV[2]` from group `ARGV[1]` of stream `KEYS[1]` if
/// it holds no entry and has not read for `ARGV[3]` ms, in one step (so a
/// consumer that reads in between keeps its entries). Returns 1 if removed.
const REMOVE_IF_DEAD: &str = r"
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local fields = {}
    for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
    if fields['name'] == ARGV[2] then
        if fields['pending'] == 0 and fields['idle'] >= tonumber(ARGV[3]) then
            redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
            return 1
        end
        return 0
    end
end
return 0";

impl RedisConsumer {
    /// Consumer `name` (stable across restarts, so it finds its own pending
    /// entries) with its own connection for blocking reads.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] if Redis cannot be reached.
    pub async fn new(client: &Client, keys: Keys, name: &str) -> Result<Self, QueueError> {
        Self::in_group(client, keys, GROUP, name).await
    }

    /// Consumer `name` of consumer group `group` (which must exist: see
    /// [`EventGroups`](crate::groups::EventGroups)).
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] if Redis cannot be reached.
    pub(crate) async fn in_group(
        client: &Client,
        keys: Keys,
        group: &str,
        name: &str,
    ) -> Result<Self, QueueError> {
        let conn = connect(client, MAX_BLOCK + Duration::from_secs(5)).await?;
        let control = connect(client, Duration::from_secs(5)).await?;
        Ok(Self {
            conn,
            control,
            keys,
            group: group.to_owned(),
            name: name.to_owned(),
            own_cursor: std::sync::Mutex::new(Some("0".to_owned())),
            dead_after: DEAD_CONSUMER_AFTER,
        })
    }

    /// Counts another consumer dead once it has not read for `after`
    /// (default [`DEAD_CONSUMER_AFTER`]).
    #[must_use]
    pub fn with_dead_after(mut self, after: Duration) -> Self {
        self.dead_after = after;
        self
    }

    /// Takes over the entries of consumers that stopped reading longer than
    /// `dead_after` ago (each entry idle as long, so none was just
    /// delivered), up to `max`, and removes from the group those that hold
    /// none: writer names of past deploys do not pile up.
    async fn take_over_dead(&self, max: usize) -> Result<Vec<StreamId>, QueueError> {
        let mut conn = self.control.clone();
        let stream = self.keys.events();
        let reply: redis::streams::StreamInfoConsumersReply = conn
            .xinfo_consumers(&stream, &self.group)
            .await
            .map_err(unavailable)?;
        let dead_ms = u64::try_from(self.dead_after.as_millis()).unwrap_or(u64::MAX);
        let mut taken = Vec::new();
        for consumer in reply.consumers {
            if consumer.name == self.name || (consumer.idle as u64) < dead_ms {
                continue;
            }
            if consumer.pending > 0 && taken.len() < max {
                let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg(&self.group)
                    .arg("IDLE")
                    .arg(dead_ms)
                    .arg("-")
                    .arg("+")
                    .arg(max - taken.len())
                    .arg(&consumer.name)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let ids: Vec<&str> = pending.ids.iter().map(|p| p.id.as_str()).collect();
                if !ids.is_empty() {
                    let claimed: redis::streams::StreamClaimReply = conn
                        .xclaim(&stream, &self.group, &self.name, dead_ms, &ids)
                        .await
                        .map_err(unavailable)?;
                    tracing::warn!(consumer = %consumer.name, entries = claimed.ids.len(), "took over the entries of a dead consumer");
                    taken.extend(claimed.ids);
                }
                continue;
            }
            static SCRIPT: LazyLock<redis::Script> =
                LazyLock::new(|| redis::Script::new(REMOVE_IF_DEAD));
            let removed: i64 = SCRIPT
                .key(&stream)
                .arg(&self.group)
                .arg(&consumer.name)
                .arg(dead_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if removed == 1 {
                tracing::info!(consumer = %consumer.name, "removed a dead consumer from the group");
            }
        }
        Ok(taken)
    }

    async fn read_group(
        &self,
        id: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(max.clamp(1, READ_CHUNK));
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(self.keys.events()).arg(id);
        let mut conn = self.conn.clone();
        let reply: Option<StreamReadReply> =
            cmd.query_async(&mut conn).await.map_err(unavailable)?;
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        Ok(self.decode_all(entries.collect()).await)
    }

    async fn decode_all(&self, entries: Vec<StreamId>) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(entries.len());
        let mut corrupt = Vec::new();
        for entry in entries {
            match decode_entry(&entry) {
                Some(event) => out.push(Delivery {
                    id: DeliveryId(entry.id),
                    event,
                }),
                None => corrupt.push(entry.id),
            }
        }
        if !corrupt.is_empty() {
            tracing::error!(entries = ?corrupt, "undecodable queue entries acked (the next trim removes them)");
            let mut conn = self.control.clone();
            let _: Result<(), RedisError> =
                conn.xack(self.keys.events(), &self.group, &corrupt).await;
        }
        out
    }
}

fn decode_entry(entry: &StreamId) -> Option<Event> {
    match entry.map.get("e")? {
        Value::BulkString(bytes) => serde_json::from_slice(bytes).ok(),
        Value::SimpleString(text) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

#[async_trait]
impl QueueConsumer for RedisConsumer {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let cursor = self
            .own_cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(cursor) = cursor {
            let own = self.read_group(&cursor, max, None).await?;
            let next = own.last().map(|d| d.id.0.clone());
            *self
                .own_cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = next;
            if !own.is_empty() {
                return Ok(own);
            }
        }
        self.read_group(">", max, Some(wait.min(MAX_BLOCK))).await
    }

    async fn ack(&self, ids: &[DeliveryId]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
        let mut conn = self.control.clone();
        static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ACK_AND_TRIM));
        SCRIPT
            .key(self.keys.events())
            .arg(&self.group)
            .arg(&ids)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn reclaim(&self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let opts = redis::streams::StreamAutoClaimOptions::default().count(max);
        let mut conn = self.control.clone();
        let stream = self.keys.events();
        let reply: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &stream,
                &self.group,
                &self.name,
                min_idle.as_millis() as u64,
                "0-0",
                opts,
            )
            .await
            .map_err(unavailable)?;
        if !reply.deleted_ids.is_empty() {
            let _: () = conn
                .xack(&stream, &self.group, &reply.deleted_ids)
                .await
                .map_err(unavailable)?;
        }
        let mut claimed = reply.claimed;
        if claimed.len() < max {
            claimed.extend(self.take_over_dead(max - claimed.len()).await?);
        }
        Ok(self.decode_all(claimed).await)
    }
}

/// Marks a device disconnected only if `remote_address` is still `ARGV[1]`.
const DISCONNECT_IF_SAME: &str = r"
local current = redis.call('HGET', KEYS[1], 'remote_address')
if current == false or current == ARGV[1] then
    redis.call('HSET', KEYS[1], 'connected', '0', 'last_seen_ms', ARGV[2])
end
return 0";

/// Current device state in Redis hashes.
#[derive(Clone, Debug)]
pub struct RedisState {
    conn: ConnectionManager,
    keys: Keys,
}

impl RedisState {
    /// State under `keys`.
    #[must_use]
    pub fn new(conn: ConnectionManager, keys: Keys) -> Self {
        Self { conn, keys }
    }
}

#[async_trait]
impl StateStore for RedisState {
    /// A disconnect is recorded only if the stored connection is still this
    /// one (same remote address): when the device already reconnected,
    /// possibly to another node, the old session's end changes nothing.
    async fn set_connection(
        &self,
        device_id: DeviceId,
        connection: &Connection,
        now_ms: i64,
    ) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let key = self.keys.state(device_id);
        if !connection.connected {
            return redis::Script::new(DISCONNECT_IF_SAME)
                .key(key)
                .arg(&connection.remote_address)
                .arg(now_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable);
        }
        let fields = [
            ("connected", "1".to_owned()),
            ("protocol", connection.protocol.clone()),
            ("remote_address", connection.remote_address.clone()),
            ("last_seen_ms", now_ms.to_string()),
        ];
        conn.hset_multiple(key, &fields).await.map_err(unavailable)
    }

    async fn touch(&self, device_id: DeviceId, now_ms: i64) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        conn.hset(self.keys.state(device_id), "last_seen_ms", now_ms)
            .await
            .map_err(unavailable)
    }

    async fn get(&self, device_id: DeviceId) -> Result<Option<DeviceState>, QueueError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = conn
            .hgetall(self.keys.state(device_id))
            .await
            .map_err(unavailable)?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(state_from_fields(&fields)))
    }
}

fn state_from_fields(fields: &HashMap<String, String>) -> DeviceState {
    let text = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let last_events = fields
        .iter()
        .filter_map(|(k, v)| {
            let kind = k.strip_prefix("last:")?;
            Some((kind.to_owned(), serde_json::from_str::<LastEvent>(v).ok()?))
        })
        .collect();
    DeviceState {
        connection: Connection {
            connected: text("connected") == "1",
            protocol: text("protocol"),
            remote_address: text("remote_address"),
        },
        last_seen_ms: fields.get("last_seen_ms").and_then(|v| v.parse().ok()),
        last_events,
    }
}

/// The feed cursor of a stream id `ms-seq`: the same on every node, and
/// increasing with the id.
fn cursor_of_id(id: &str) -> Option<u64> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    Some((ms << 20) | seq.min((1 << 20) - 1))
}

/// Feeds this node's [`ChangeFeed`](crate::feed::ChangeFeed) from the change
/// stream `{p}changes`, so a gRPC subscriber on any node sees the events of
/// every node, under cursors that are the same everywhere (a client can
/// resume on another node). Pair with `RedisQueue::with_change_stream` and
/// `Ingest::relayed`. The change stream is capped; the events queue never is.
#[derive(Debug)]
pub struct ChangeRelay {
    conn: ConnectionManager,
    keys: Keys,
}

impl ChangeRelay {
    /// A relay with its own connection (it blocks on reads).
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] if Redis cannot be reached.
    pub async fn new(client: &Client, keys: Keys) -> Result<Self, QueueError> {
        let conn = connect(client, MAX_BLOCK + Duration::from_secs(5)).await?;
        Ok(Self { conn, keys })
    }

    /// Relays new changes until `shutdown`.
    pub async fn run_until_stopped(
        self,
        feed: std::sync::Arc<crate::feed::ChangeFeed>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut last = self.tail().await;
        while !shutdown.is_cancelled() {
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                read = self.read_after(&last) => read,
            };
            match read {
                Ok(entries) => {
                    for entry in entries {
                        if let (Some(cursor), Some(event)) =
                            (cursor_of_id(&entry.id), decode_entry(&entry))
                        {
                            feed.publish_at(cursor, &event);
                        }
                        last = entry.id;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change relay read failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The id of the newest change now (`0-0` when there is none), so
    /// nothing appended after start is missed between blocking reads.
    async fn tail(&self) -> String {
        let mut conn = self.conn.clone();
        let newest: redis::RedisResult<StreamRangeReply> =
            conn.xrevrange_count(self.keys.changes(), "+", "-", 1).await;
        newest
            .ok()
            .and_then(|r| r.ids.into_iter().next())
            .map_or_else(|| "0-0".to_owned(), |e| e.id)
    }

    async fn read_after(&self, last: &str) -> Result<Vec<StreamId>, QueueError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(MAX_BLOCK.as_millis() as u64);
        cmd.arg("STREAMS").arg(self.keys.changes()).arg(last);
        let mut conn = self.conn.clone();
        let reply: Option<StreamReadReply> =
            cmd.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect())
    }
}
