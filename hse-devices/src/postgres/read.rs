//! [`EventHistory`] over PostgreSQL: raw events from `device_events`
//! (index `(device_id, time DESC, event_id DESC)`), aggregates from the
//! rollups, each in a transaction scoped to the caller (row-level security
//! shows a scope only its own devices' rows).

use chrono::{DateTime, TimeZone, Utc};
use hse_core::postgres::scoped_tx;
use hse_core::{DeviceId, Scope};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgEventStore;
use crate::history::{Aggregate, Bucket, EventHistory, EventPage, EventQuery, ReadError, stddev};
use crate::model::{Event, EventType};

fn time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

fn storage(e: sqlx::Error) -> ReadError {
    ReadError::Storage(e.to_string())
}

fn event_of(row: &PgRow) -> Result<Event, sqlx::Error> {
    let time: DateTime<Utc> = row.try_get("time")?;
    let kind: String = row.try_get("event_type")?;
    let metadata: Option<String> = row.try_get("metadata")?;
    Ok(Event {
        event_id: row.try_get("event_id")?,
        device_id: DeviceId::from(row.try_get::<Uuid, _>("device_id")?),
        ts_ms: time.timestamp_millis(),
        event_type: EventType::parse(&kind).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        value: row.try_get("value")?,
        unit: row.try_get("unit")?,
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        source: row.try_get("source")?,
    })
}

#[async_trait::async_trait]
impl EventHistory for PgEventStore {
    async fn events(&self, scope: &Scope, query: &EventQuery) -> Result<EventPage, ReadError> {
        let cursor = query.checked_cursor()?;
        let types: Vec<String> = query.types.iter().map(ToString::to_string).collect();
        let mut tx = scoped_tx(self.pool(), scope).await.map_err(storage)?;
        let rows = sqlx::query(
            "SELECT time, device_id, event_id, event_type, value, unit, metadata::text AS metadata, source
             FROM device_events
             WHERE device_id = $1
               AND ($2::timestamptz IS NULL OR time >= $2)
               AND ($3::timestamptz IS NULL OR time < $3)
               AND (cardinality($4::text[]) = 0 OR event_type = ANY($4))
               AND ($5::timestamptz IS NULL OR (time, event_id) < ($5, $6))
             ORDER BY time DESC, event_id DESC
             LIMIT $7",
        )
        .bind(query.device_id.as_uuid())
        .bind(time(query.from_ms))
        .bind(time(query.to_ms))
        .bind(&types)
        .bind(cursor.map(|c| c.0))
        .bind(cursor.map(|c| c.1))
        .bind(i64::from(query.limit) + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        let events = rows.iter().map(event_of).collect::<Result<Vec<_>, _>>();
        Ok(EventPage::from_probe(events.map_err(storage)?, query.limit))
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
        let table = match bucket {
            Bucket::Hour => "device_rollups_hourly",
            Bucket::Day => "device_rollups_daily",
        };
        let sql = format!(
            "SELECT bucket, event_count, value_count, value_sum, value_min, value_max, value_sum_sq
             FROM {table}
             WHERE device_id = $1 AND event_type = $2 AND bucket >= $3 AND bucket < $4
             ORDER BY bucket"
        );
        let mut tx = scoped_tx(self.pool(), scope).await.map_err(storage)?;
        let rows = sqlx::query(&sql)
            .bind(device_id.as_uuid())
            .bind(event_type.as_str())
            .bind(time(Some(from_ms)))
            .bind(time(Some(to_ms)))
            .fetch_all(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        rows.iter()
            .map(aggregate_of)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(storage)
    }
}

fn aggregate_of(row: &PgRow) -> Result<Aggregate, sqlx::Error> {
    let bucket: DateTime<Utc> = row.try_get("bucket")?;
    let value_count: i64 = row.try_get("value_count")?;
    let sum: f64 = row.try_get("value_sum")?;
    let sum_sq: f64 = row.try_get("value_sum_sq")?;
    Ok(Aggregate {
        bucket_start_ms: bucket.timestamp_millis(),
        count: row.try_get("event_count")?,
        value_count,
        sum,
        avg: (value_count > 0).then(|| sum / value_count as f64),
        min: row.try_get("value_min")?,
        max: row.try_get("value_max")?,
        stddev: stddev(value_count, sum, sum_sq),
    })
}
