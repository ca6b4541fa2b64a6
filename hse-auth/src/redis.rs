//! Redis adapters (feature `redis`): the GCRA [`RateLimiter`], the
//! sign-in [`FailureStore`] and the access-token [`Denylist`], so several
//! server processes share one limit and one list of ended sessions.
//!
//! Each decision is one Lua script, which Redis runs atomically: two
//! processes counting against one key can never both take the last slot.
//! By default the script reads Redis's own `TIME`, so the processes need
//! not agree on the time; [`RedisRateLimiter::with_clock`] passes an
//! injected clock instead (tests). Keys live under a caller-chosen prefix
//! and expire on their own once they no longer constrain anything.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use hse_core::clock::Clock;
use redis::Script;
use redis::aio::ConnectionManager;

use crate::denylist::Denylist;
use crate::error::{AuthError, Result};
use crate::rate_limit::{Decision, Quota, RateLimiter};
use crate::throttle::{FailureStore, Failures};

/// GCRA in one script. KEYS[1]: the TAT key. ARGV: interval µs, tolerance
/// µs, now µs (empty: use Redis TIME). Returns {allowed, wait µs}.
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local over = new_tat - now - tolerance
if over > 0 then
  return {0, string.format('%d', over)}
end
local ttl_ms = math.floor((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
return {1, '0'}
";

/// One failure. KEYS[1]: the record. ARGV: now ms, forget-after ms.
/// Returns the new count.
const FAILURE_SCRIPT: &str = r"
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return count
";

/// GCRA rate limits shared through Redis.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    prefix: String,
    clock: Option<Arc<dyn Clock>>,
    script: Arc<Script>,
}

impl RedisRateLimiter {
    /// A limiter on `conn` whose keys start with `prefix` (e.g. `hse:rl:`),
    /// timed by Redis's own clock.
    #[must_use]
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            clock: None,
            script: Arc::new(Script::new(GCRA_SCRIPT)),
        }
    }

    /// Times decisions with `clock` instead of Redis's clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision> {
        let now = self
            .clock
            .as_ref()
            .map(|c| c.now().timestamp_micros().to_string())
            .unwrap_or_default();
        let mut conn = self.conn.clone();
        let (allowed, wait): (i64, String) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(quota.interval_us())
            .arg(quota.tolerance_us())
            .arg(now)
            .invoke_async(&mut conn)
            .await?;
        if allowed == 1 {
            return Ok(Decision::Allowed);
        }
        let wait: u64 = wait
            .parse()
            .map_err(|_| AuthError::Storage(format!("GCRA script returned wait `{wait}`")))?;
        Ok(Decision::Limited {
            retry_after: std::time::Duration::from_micros(wait),
        })
    }
}

/// Sign-in failure counts shared through Redis.
///
/// Records are forgotten by Redis key expiry (`PEXPIRE`, real time), so
/// the `now` passed to [`FailureStore::failures`] is not consulted.
#[derive(Clone)]
pub struct RedisFailureStore {
    conn: ConnectionManager,
    prefix: String,
    script: Arc<Script>,
}

impl RedisFailureStore {
    /// A store on `conn` whose keys start with `prefix` (e.g. `hse:fail:`).
    #[must_use]
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            script: Arc::new(Script::new(FAILURE_SCRIPT)),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl fmt::Debug for RedisFailureStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFailureStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl FailureStore for RedisFailureStore {
    async fn failures(&self, key: &str, _now: DateTime<Utc>) -> Result<Option<Failures>> {
        let mut conn = self.conn.clone();
        let (count, last): (Option<u32>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.key(key))
            .arg("count")
            .arg("last")
            .query_async(&mut conn)
            .await?;
        let last = last.and_then(|ms| Utc.timestamp_millis_opt(ms).single());
        Ok(count
            .zip(last)
            .map(|(count, last)| Failures { count, last }))
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        forget_after: Duration,
    ) -> Result<Failures> {
        let mut conn = self.conn.clone();
        let count: u32 = self
            .script
            .key(self.key(key))
            .arg(now.timestamp_millis())
            .arg(forget_after.num_milliseconds().max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(Failures { count, last: now })
    }

    async fn clear(&self, key: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// Ended sessions and users shared through Redis: one key each, expiring
/// with the last token it refuses (`SET … PX`), read with one `MGET`.
///
/// Records expire by Redis's clock: the `now` passed is used only to
/// compute how long a record lives.
#[derive(Clone)]
pub struct RedisDenylist {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisDenylist {
    /// A list on `conn` whose keys start with `prefix` (e.g. `hse:deny:`).
    #[must_use]
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }
}

impl fmt::Debug for RedisDenylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDenylist")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Denylist for RedisDenylist {
    async fn put(
        &self,
        key: &str,
        value: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let ttl_ms = (until - now).num_milliseconds();
        if ttl_ms <= 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn get(&self, keys: &[String], _now: DateTime<Utc>) -> Result<Vec<Option<i64>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(format!("{}{key}", self.prefix));
        }
        Ok(cmd.query_async(&mut conn).await?)
    }
}
