//! PostgreSQL event store (feature `postgres`): idempotent batch inserts
//! with rollups in the same statement, reads, and partition upkeep.
//!
//! Schema: `hse-devices/migrations` (versions `20261128300xxx` and
//! `20261204300xxx`, sharing
//! `_sqlx_migrations` with the other HSE crates). A batch is one statement:
//! `UNNEST` arrays feed `INSERT … ON CONFLICT DO NOTHING RETURNING` into
//! `device_event_ids` (key `(device_id, event_id)`, without the time), the
//! events whose id was new are inserted into `device_events`, and the
//! returned rows — only those actually inserted — are aggregated into the
//! hourly and daily rollups, so a redelivered batch, or the same event
//! retried with another time, changes nothing.
//! SQLSTATE classes 22 (data), 23 (integrity) and 54 (limits) are content
//! errors (split and dead-letter); everything else is transient (retry).
//!
//! Row-level security: the writer and the reads run in the system scope
//! (`hse_core::postgres::system_tx`). The writer acts for no user; reads
//! ([`crate::history::EventHistory`] carries no scope) are made by the
//! server only after it has located the device and checked the caller's
//! scope and permission through the (scoped) tenancy store.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration as Days, NaiveDate, TimeZone, Utc};
use hse_core::postgres::system_tx;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::error::SinkError;
use crate::model::Event;
use crate::writer::EventSink;

/// Applies hse-devices' migrations. Idempotent; safe at every start.
///
/// # Errors
/// The migration error, if one fails.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

/// Maps a database error to transient or content.
#[must_use]
pub fn classify(error: &sqlx::Error) -> SinkError {
    if let sqlx::Error::Database(db) = error {
        let code = db.code().unwrap_or_default();
        if ["22", "23", "54"]
            .iter()
            .any(|class| code.starts_with(class))
        {
            return SinkError::Content(format!("SQLSTATE {code}"));
        }
    }
    SinkError::Transient(error.to_string())
}

/// The event store.
#[derive(Debug)]
pub struct PgEventStore {
    pool: PgPool,
    known_days: Mutex<HashSet<NaiveDate>>,
}

/// The batch insert. An event is stored only if its `(device_id,
/// event_id)` is new to `device_event_ids` (whatever its time: a retry
/// with another time is the same event), and only stored events are
/// rolled up. The rollup rows are upserted in key order, so writers
/// storing batches at the same time (several `hse-devices-writer`
/// processes) lock shared buckets in the same order and never deadlock.
const INSERT: &str = r"
WITH input AS (
    SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::uuid[], $4::text[],
                         $5::float8[], $6::text[], $7::text[], $8::text[])
        AS t(time, device_id, event_id, event_type, value, unit, metadata, source)
), fresh AS (
    INSERT INTO device_event_ids (device_id, event_id, time)
    SELECT device_id, event_id, time FROM input
    ON CONFLICT DO NOTHING
    RETURNING device_id, event_id, time
), inserted AS (
    INSERT INTO device_events (time, device_id, event_id, event_type, value, unit, metadata, source)
    SELECT i.time, i.device_id, i.event_id, i.event_type, i.value, i.unit, i.metadata::jsonb, i.source
    FROM input i JOIN fresh f USING (device_id, event_id, time)
    ON CONFLICT DO NOTHING
    RETURNING time, device_id, event_type, value
), hourly AS (
    INSERT INTO device_rollups_hourly AS r
    SELECT device_id, event_type, date_trunc('hour', time, 'UTC'), count(*), count(value),
           coalesce(sum(hse_rollup_value(value)), 0), min(value), max(value),
           coalesce(sum(hse_rollup_square(value)), 0)
    FROM inserted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (device_id, event_type, bucket) DO UPDATE SET
        event_count = r.event_count + EXCLUDED.event_count,
        value_count = r.value_count + EXCLUDED.value_count,
        value_sum = hse_rollup_add(r.value_sum, EXCLUDED.value_sum),
        value_min = LEAST(r.value_min, EXCLUDED.value_min),
        value_max = GREATEST(r.value_max, EXCLUDED.value_max),
        value_sum_sq = hse_rollup_add(r.value_sum_sq, EXCLUDED.value_sum_sq)
    RETURNING 1
), daily AS (
    INSERT INTO device_rollups_daily AS r
    SELECT device_id, event_type, date_trunc('day', time, 'UTC'), count(*), count(value),
           coalesce(sum(hse_rollup_value(value)), 0), min(value), max(value),
           coalesce(sum(hse_rollup_square(value)), 0)
    FROM inserted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (device_id, event_type, bucket) DO UPDATE SET
        event_count = r.event_count + EXCLUDED.event_count,
        value_count = r.value_count + EXCLUDED.value_count,
        value_sum = hse_rollup_add(r.value_sum, EXCLUDED.value_sum),
        value_min = LEAST(r.value_min, EXCLUDED.value_min),
        value_max = GREATEST(r.value_max, EXCLUDED.value_max),
        value_sum_sq = hse_rollup_add(r.value_sum_sq, EXCLUDED.value_sum_sq)
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS inserted,
       (SELECT count(*) FROM hourly) + (SELECT count(*) FROM daily) AS buckets";

/// Column arrays of a batch, for `UNNEST`.
#[derive(Default)]
struct Columns {
    time: Vec<DateTime<Utc>>,
    device_id: Vec<Uuid>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    value: Vec<Option<f64>>,
    unit: Vec<Option<String>>,
    metadata: Vec<Option<String>>,
    source: Vec<Option<String>>,
}

fn time_of(ts_ms: i64) -> Result<DateTime<Utc>, SinkError> {
    Utc.timestamp_millis_opt(ts_ms)
        .single()
        .ok_or_else(|| SinkError::Content("timestamp out of range".into()))
}

impl Columns {
    fn of(events: &[Event]) -> Result<Self, SinkError> {
        let mut c = Self::default();
        for e in events {
            c.time.push(time_of(e.ts_ms)?);
            c.device_id.push(e.device_id.as_uuid());
            c.event_id.push(e.event_id);
            c.event_type.push(e.event_type.to_string());
            c.value.push(e.value);
            c.unit.push(e.unit.clone());
            c.metadata.push(
                e.metadata
                    .as_ref()
                    .map(|m| serde_json::Value::Object(m.clone()).to_string()),
            );
            c.source.push(e.source.clone());
        }
        Ok(c)
    }
}

impl PgEventStore {
    /// A store over `pool` (run [`migrate`] first).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            known_days: Mutex::new(HashSet::new()),
        }
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn ensure_days(&self, events: &[Event]) -> Result<(), sqlx::Error> {
        let missing: Vec<NaiveDate> = {
            let known = self
                .known_days
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let days: HashSet<NaiveDate> = events
                .iter()
                .filter_map(|e| Utc.timestamp_millis_opt(e.ts_ms).single())
                .map(|t| t.date_naive())
                .collect();
            days.into_iter().filter(|d| !known.contains(d)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT hse_devices_ensure_partition(d) FROM UNNEST($1::date[]) AS d")
            .bind(&missing)
            .execute(&self.pool)
            .await?;
        self.known_days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(missing);
        Ok(())
    }

    /// Creates partitions from yesterday to `ahead_days` ahead of `today`
    /// and drops those older than `retention_days`; returns how many were
    /// dropped. A no-op on a hypertable (TimescaleDB's policies do it).
    ///
    /// # Errors
    /// The database error.
    pub async fn maintain(
        &self,
        today: NaiveDate,
        ahead_days: i64,
        retention_days: i64,
    ) -> Result<i32, sqlx::Error> {
        let days: Vec<NaiveDate> = (-1..=ahead_days).map(|d| today + Days::days(d)).collect();
        sqlx::query("SELECT hse_devices_ensure_partition(d) FROM UNNEST($1::date[]) AS d")
            .bind(&days)
            .execute(&self.pool)
            .await?;
        let cutoff = today - Days::days(retention_days);
        let dropped: i32 = sqlx::query_scalar("SELECT hse_devices_drop_partitions_before($1)")
            .bind(cutoff)
            .fetch_one(&self.pool)
            .await?;
        self.prune_event_ids(cutoff).await?;
        self.known_days
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|d| *d >= cutoff);
        Ok(dropped)
    }

    /// Forgets the ids of events older than `cutoff` (their events are
    /// past retention): the partitions' drop, or TimescaleDB's retention
    /// policy, removed the events themselves.
    async fn prune_event_ids(&self, cutoff: NaiveDate) -> Result<(), sqlx::Error> {
        let Some(cutoff) = cutoff.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) else {
            return Ok(());
        };
        let mut tx = system_tx(&self.pool).await?;
        sqlx::query("DELETE FROM device_event_ids WHERE time < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Whether `device_events` is a TimescaleDB hypertable (else it is
    /// natively partitioned).
    ///
    /// # Errors
    /// The database error.
    pub async fn is_hypertable(&self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_partitioned_table
                                WHERE partrelid = 'device_events'::regclass)",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Replaces the hypertable's compression and retention policies
    /// (defaults 7 days and 730 days); returns `false` and changes nothing
    /// on the partitioned layout, whose retention [`Self::maintain`] applies.
    ///
    /// # Errors
    /// The database error.
    pub async fn set_timescale_policies(
        &self,
        compress_after_days: i32,
        retain_days: i32,
    ) -> Result<bool, sqlx::Error> {
        if !self.is_hypertable().await? {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        for sql in [
            "SELECT remove_compression_policy('device_events', if_exists => true)",
            "SELECT remove_retention_policy('device_events', if_exists => true)",
        ] {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        sqlx::query("SELECT add_compression_policy('device_events', make_interval(days => $1))")
            .bind(compress_after_days)
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT add_retention_policy('device_events', make_interval(days => $1))")
            .bind(retain_days)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Runs [`Self::maintain`] every `every` until `shutdown`.
    pub async fn run_maintenance_until_stopped(
        &self,
        every: std::time::Duration,
        ahead_days: i64,
        retention_days: i64,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            match self
                .maintain(Utc::now().date_naive(), ahead_days, retention_days)
                .await
            {
                Ok(dropped) if dropped > 0 => {
                    tracing::info!(partitions.dropped = dropped, "old partitions dropped")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "partition maintenance failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

#[async_trait]
impl EventSink for PgEventStore {
    async fn store(&self, events: &[Event]) -> Result<u64, SinkError> {
        if events.is_empty() {
            return Ok(0);
        }
        self.ensure_days(events).await.map_err(|e| classify(&e))?;
        let c = Columns::of(events)?;
        // One transaction per batch, its scope set once (in the BEGIN
        // round trip); the policies test the system scope first, per row.
        let mut tx = system_tx(&self.pool).await.map_err(|e| classify(&e))?;
        let row = sqlx::query(INSERT)
            .bind(&c.time)
            .bind(&c.device_id)
            .bind(&c.event_id)
            .bind(&c.event_type)
            .bind(&c.value)
            .bind(&c.unit)
            .bind(&c.metadata)
            .bind(&c.source)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| classify(&e))?;
        tx.commit().await.map_err(|e| classify(&e))?;
        let inserted: i64 = row.try_get("inserted").map_err(|e| classify(&e))?;
        Ok(u64::try_from(inserted).unwrap_or(0))
    }
}

mod read;
