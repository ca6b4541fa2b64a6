//! Closed rollup buckets cached in Redis (feature `redis`), exactly.
//!
//! [`CachedHistory`] answers the closed part of an aggregates query (buckets
//! that ended before the current hour or day) from Redis and asks the
//! store only for the open part. Each series `(device, event type)` has a
//! version, `{p}aggv:{device}:{type}`, that is part of every cache key.
//! [`InvalidatingSink`] bumps the version of each series that received an
//! event older than the current hour, after the store committed, so a
//! late event makes the next read miss the cache. Reading the version
//! before querying the store means a result computed from data older than
//! a commit is only ever cached under the old version, which nobody reads
//! after the bump.
//!
//! Cache keys also carry the reader's scope (a digest of it), so an
//! answer computed inside one scope is only ever served to that scope:
//! the cache never lets a read skip row-level security.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use hse_core::{DeviceId, Scope};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::error::SinkError;
use crate::history::{Aggregate, Bucket, EventHistory, EventPage, EventQuery, ReadError};
use crate::model::{Event, EventType};
use crate::redis::Keys;
use crate::writer::EventSink;

/// How long a cached range lives (it is also replaced on every bump).
const TTL_SECONDS: u64 = 86_400;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn width(bucket: Bucket) -> i64 {
    match bucket {
        Bucket::Hour => HOUR_MS,
        Bucket::Day => DAY_MS,
    }
}

/// A short stable name of `scope` for cache keys (`all` for the platform).
fn scope_digest(scope: &Scope) -> String {
    use sha2::{Digest, Sha256};
    if *scope == Scope::Platform {
        return "all".into();
    }
    let digest = Sha256::digest(format!("{scope:?}").as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The series versions and cached ranges.
#[derive(Clone)]
pub struct RollupCache {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RollupCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollupCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RollupCache {
    /// The cache under `keys`' prefix.
    #[must_use]
    pub fn new(conn: ConnectionManager, keys: &Keys) -> Self {
        Self {
            conn,
            prefix: keys.prefix().to_owned(),
        }
    }

    fn version_key(&self, device_id: DeviceId, event_type: &str) -> String {
        format!("{}aggv:{device_id}:{event_type}", self.prefix)
    }

    async fn version(&self, device_id: DeviceId, event_type: &str) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        let v: Option<u64> = conn.get(self.version_key(device_id, event_type)).await?;
        Ok(v.unwrap_or(0))
    }

    async fn bump(&self, series: &BTreeSet<(DeviceId, String)>) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for (device_id, event_type) in series {
            pipe.incr(self.version_key(*device_id, event_type), 1)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }
}

/// [`EventHistory`] with the closed buckets of aggregates cached.
#[derive(Debug)]
pub struct CachedHistory {
    inner: Arc<dyn EventHistory>,
    cache: RollupCache,
}

impl CachedHistory {
    /// Caches `inner`'s aggregates in `cache`.
    #[must_use]
    pub fn new(inner: Arc<dyn EventHistory>, cache: RollupCache) -> Self {
        Self { inner, cache }
    }

    async fn closed_range(
        &self,
        scope: &Scope,
        device_id: DeviceId,
        event_type: &EventType,
        bucket: Bucket,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Aggregate>, ReadError> {
        let version = self.cache.version(device_id, event_type.as_str()).await;
        let key = version.as_ref().ok().map(|v| {
            format!(
                "{}agg:{v}:{}:{device_id}:{event_type}:{bucket:?}:{from_ms}:{to_ms}",
                self.cache.prefix,
                scope_digest(scope),
            )
        });
        let mut conn = self.cache.conn.clone();
        if let Some(key) = &key {
            let hit: Option<String> = conn.get(key).await.unwrap_or(None);
            if let Some(cached) = hit.and_then(|text| serde_json::from_str(&text).ok()) {
                return Ok(cached);
            }
        }
        let fresh = self
            .inner
            .aggregates(scope, device_id, event_type, bucket, from_ms, to_ms)
            .await?;
        if let (Some(key), Ok(text)) = (key, serde_json::to_string(&fresh)) {
            let stored: redis::RedisResult<()> = conn.set_ex(key, text, TTL_SECONDS).await;
            if let Err(e) = stored {
                tracing::debug!(error = %e, "aggregate not cached");
            }
        }
        Ok(fresh)
    }
}

#[async_trait]
impl EventHistory for CachedHistory {
    async fn events(&self, scope: &Scope, query: &EventQuery) -> Result<EventPage, ReadError> {
        self.inner.events(scope, query).await
    }

    async fn aggregates(
        &self,
        scope: &Scope,
        device_id: DeviceId,
        event_type: &EventType,
        bucket: Bucket,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Aggregate>, ReadError> {
        let open_start = now_ms().div_euclid(width(bucket)) * width(bucket);
        let closed_to = to_ms.min(open_start);
        let mut series = Vec::new();
        if from_ms < closed_to {
            series = self
                .closed_range(scope, device_id, event_type, bucket, from_ms, closed_to)
                .await?;
        }
        let open_from = from_ms.max(open_start);
        if open_from < to_ms {
            let open = self
                .inner
                .aggregates(scope, device_id, event_type, bucket, open_from, to_ms)
                .await?;
            series.extend(open);
        }
        Ok(series)
    }
}

/// An [`EventSink`] that, after each successful store, invalidates the
/// cached series that received events older than the current hour.
#[derive(Debug)]
pub struct InvalidatingSink {
    inner: Arc<dyn EventSink>,
    cache: RollupCache,
}

impl InvalidatingSink {
    /// Wraps `inner`.
    #[must_use]
    pub fn new(inner: Arc<dyn EventSink>, cache: RollupCache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait]
impl EventSink for InvalidatingSink {
    async fn store(&self, events: &[Event]) -> Result<u64, SinkError> {
        let inserted = self.inner.store(events).await?;
        let open_hour = now_ms().div_euclid(HOUR_MS) * HOUR_MS;
        let late: BTreeSet<(DeviceId, String)> = events
            .iter()
            .filter(|e| e.ts_ms < open_hour)
            .map(|e| (e.device_id, e.event_type.to_string()))
            .collect();
        if !late.is_empty() {
            self.cache
                .bump(&late)
                .await
                .map_err(|e| SinkError::Transient(format!("rollup cache invalidation: {e}")))?;
        }
        Ok(inserted)
    }
}
