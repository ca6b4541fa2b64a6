//! The producer side of the events stream ([`RedisQueue`]): the enqueue
//! round trip, what its failures mean, and the storage lag.
//!
//! An enqueue is one pipelined round trip on the queue's own connection:
//! an `XADD` per event, an `HSET` of each device's state, and an `XLEN`
//! that refreshes the backlog. Its outcome is reported as it is known:
//!
//! | what happened | result | were the events enqueued? |
//! |---|---|---|
//! | answered | `Ok` | yes, however late the answer came within the timeout |
//! | no connection could be made | [`QueueError::Unavailable`] | no: nothing was sent |
//! | sent, no answer within `enqueue_timeout` | [`QueueError::OutcomeUnknown`] | maybe |
//! | sent, the connection broke or Redis answered an error | [`QueueError::OutcomeUnknown`] | maybe (a pipeline is not atomic) |
//!
//! The connection has no response timeout of its own: the shared one's
//! 500 ms used to turn a slow but successful `XADD` into `unavailable`,
//! and the device resent events that were already in.
//!
//! The storage lag is one script round trip: the age, by the Redis clock,
//! of the first entry after the consumer group's last delivered one (the
//! oldest entry no writer has taken), and the group's `lag` and
//! `entries-read` counters (Redis 7).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use hse_core::DeviceId;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig, Client, RedisError};

use super::{GROUP, Keys, unavailable};
use crate::error::QueueError;
use crate::groups::{EventGroups, GroupName};
use crate::model::Event;
use crate::queue::{EventQueue, LagSample, QueueConsumer};
use crate::state::LastEvent;

/// Default longest wait for an enqueue's answer.
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `{now_s, now_us, id, lag, entries_read}`: the Redis time, the id of the
/// first entry of stream `KEYS[1]` after the last one group `ARGV[1]`
/// delivered (`""` when there is none), and the group's `lag` (entries not
/// delivered) and `entries-read` counter (`""` when Redis cannot tell);
/// empty when the stream does not exist.
///
/// The `lag` is capped at the stream's length minus the group's pending
/// entries: nothing undelivered is ever trimmed, so no more than that can
/// wait. Redis 7.0 does not persist `entries-read` across a restart: its
/// `XREADGROUP` goes to the append-only file as `XCLAIM ... LASTID`, which
/// moves the group's last id but not its counter, so after the append-only
/// file is replayed the counter is the one of the last AOF rewrite (or
/// unknown), and `XINFO GROUPS` reports, for good, a lag too high by the
/// entries delivered since that rewrite (62,000 in issue 14; every read
/// after it counts on from the stale value).
const OLDEST_UNTAKEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local last, lag, read = '0-0', '', ''
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then
        last = fields['last-delivered-id']
        if fields['lag'] then
            local most = redis.call('XLEN', KEYS[1]) - fields['pending']
            lag = tostring(math.max(0, math.min(fields['lag'], most)))
        end
        if fields['entries-read'] then read = tostring(fields['entries-read']) end
    end
end
local first = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
local now = redis.call('TIME')
local id = ''
if #first > 0 then id = first[1][1] end
return {now[1], now[2], id, lag, read}";

/// The queue's own connection, made again after it broke.
struct Link {
    client: Client,
    current: Mutex<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection, made if there is none; an error means nothing was
    /// sent.
    async fn get(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets a connection that failed, so the next call makes a new one.
    fn discard(&self) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The producer side of the events stream.
#[derive(Debug)]
pub struct RedisQueue {
    link: Link,
    keys: Keys,
    backlog: AtomicU64,
    relay_len: Option<usize>,
    enqueue_timeout: Duration,
}

impl RedisQueue {
    /// The queue under `keys`, on its own connection; creates the stream
    /// and consumer group.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] if Redis fails.
    pub async fn new(client: &Client, keys: Keys) -> Result<Self, QueueError> {
        let link = Link::new(client);
        let mut c = link.get().await.map_err(unavailable)?;
        let created: Result<(), RedisError> =
            c.xgroup_create_mkstream(keys.events(), GROUP, "0").await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(unavailable(e)),
            _ => {}
        }
        let backlog: u64 = c.xlen(keys.events()).await.map_err(unavailable)?;
        Ok(Self {
            link,
            keys,
            backlog: AtomicU64::new(backlog),
            relay_len: None,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
        })
    }

    /// Also appends each event to the change stream `{p}changes` (capped
    /// near `keep` entries) in the same round trip, for
    /// [`ChangeRelay`](super::ChangeRelay).
    #[must_use]
    pub fn with_change_stream(mut self, keep: usize) -> Self {
        self.relay_len = Some(keep);
        self
    }

    /// How long an enqueue waits for its answer before it reports
    /// [`QueueError::OutcomeUnknown`] (default [`DEFAULT_ENQUEUE_TIMEOUT`]).
    #[must_use]
    pub fn with_enqueue_timeout(mut self, timeout: Duration) -> Self {
        self.enqueue_timeout = timeout;
        self
    }

    fn pipeline(&self, events: &[Event]) -> Result<redis::Pipeline, QueueError> {
        let stream = self.keys.events();
        let mut pipe = redis::pipe();
        for event in events {
            let json =
                serde_json::to_string(event).map_err(|e| QueueError::Corrupt(e.to_string()))?;
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("e")
                .arg(json)
                .ignore();
        }
        for (device_id, fields) in state_fields(events)? {
            pipe.hset_multiple(self.keys.state(device_id), &fields)
                .ignore();
        }
        if let Some(keep) = self.relay_len {
            for event in events {
                let json =
                    serde_json::to_string(event).map_err(|e| QueueError::Corrupt(e.to_string()))?;
                pipe.cmd("XADD")
                    .arg(self.keys.changes())
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(keep)
                    .arg("*")
                    .arg("e")
                    .arg(json)
                    .ignore();
            }
        }
        pipe.xlen(&stream);
        Ok(pipe)
    }
}

/// The `HSET` fields of each device's state for these events.
fn state_fields(events: &[Event]) -> Result<BTreeMap<DeviceId, Vec<(String, String)>>, QueueError> {
    let mut per_device: BTreeMap<DeviceId, BTreeMap<String, String>> = BTreeMap::new();
    for event in events {
        let fields = per_device.entry(event.device_id).or_default();
        let last = serde_json::to_string(&LastEvent::of(event))
            .map_err(|e| QueueError::Corrupt(e.to_string()))?;
        fields.insert(format!("last:{}", event.event_type), last);
        fields.insert("last_seen_ms".to_owned(), event.ts_ms.to_string());
    }
    Ok(per_device
        .into_iter()
        .map(|(d, f)| (d, f.into_iter().collect()))
        .collect())
}

/// The milliseconds part of a stream id `ms-seq`.
fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

#[async_trait]
impl EventQueue for RedisQueue {
    async fn enqueue(&self, events: &[Event]) -> Result<(), QueueError> {
        let pipe = self.pipeline(events)?;
        let mut conn = self.link.get().await.map_err(unavailable)?;
        let sent = tokio::time::timeout(self.enqueue_timeout, pipe.query_async(&mut conn));
        match sent.await {
            Ok(Ok((len,))) => {
                self.backlog.store(len, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() {
                    self.link.discard();
                }
                Err(QueueError::OutcomeUnknown(e.to_string()))
            }
            Err(_) => Err(QueueError::OutcomeUnknown(format!(
                "no answer within {} ms",
                self.enqueue_timeout.as_millis()
            ))),
        }
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    async fn storage_lag(&self) -> Result<LagSample, QueueError> {
        static SCRIPT: LazyLock<redis::Script> =
            LazyLock::new(|| redis::Script::new(OLDEST_UNTAKEN));
        let mut conn = self.link.get().await.map_err(unavailable)?;
        let reply: Vec<String> = SCRIPT
            .key(self.keys.events())
            .arg(GROUP)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                if e.is_io_error() || e.is_connection_dropped() {
                    self.link.discard();
                }
                unavailable(e)
            })?;
        let [secs, micros, id, lag, read] = reply.as_slice() else {
            return Ok(LagSample::default());
        };
        let (Ok(secs), Ok(micros)) = (secs.parse::<u64>(), micros.parse::<u64>()) else {
            return Err(QueueError::Corrupt("TIME is not numeric".to_owned()));
        };
        let now_ms = secs * 1000 + micros / 1000;
        Ok(LagSample {
            oldest_untaken: id_ms(id).map_or(Duration::ZERO, |ms| {
                Duration::from_millis(now_ms.saturating_sub(ms))
            }),
            untaken: lag.parse().ok(),
            taken: read.parse().ok(),
        })
    }
}

#[async_trait]
impl EventGroups for RedisQueue {
    /// Creates the group at the stream's end (`XGROUP CREATE .. $`) unless
    /// it exists, and returns a [`RedisConsumer`](super::RedisConsumer) of
    /// it on connections of its own.
    async fn register_group(
        &self,
        group: &GroupName,
        consumer: &str,
    ) -> Result<std::sync::Arc<dyn QueueConsumer>, QueueError> {
        let mut conn = self.link.get().await.map_err(unavailable)?;
        let created: Result<(), RedisError> = conn
            .xgroup_create_mkstream(self.keys.events(), group.as_str(), "$")
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => return Err(unavailable(e)),
            _ => {}
        }
        let member = super::RedisConsumer::in_group(
            &self.link.client,
            self.keys.clone(),
            group.as_str(),
            consumer,
        )
        .await?;
        Ok(std::sync::Arc::new(member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_give_their_milliseconds() {
        assert_eq!(id_ms("1764288000123-7"), Some(1_764_288_000_123));
        assert_eq!(id_ms(""), None);
        assert_eq!(id_ms("x-1"), None);
    }
}
