//! The read side: raw events newest first with cursor paging, and
//! aggregates from the rollups (so a year of hourly points costs the same
//! whatever the raw volume).

use chrono::{DateTime, TimeZone, Utc};
use hse_core::DeviceId;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgEventStore;
use crate::error::Invalid;
use crate::model::{Event, EventType};

/// Most events per page.
pub const MAX_PAGE: u32 = 1000;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A parameter (cursor, limit) is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

/// Which raw events to read.
#[derive(Clone, Debug)]
pub struct EventQuery {
    /// The device.
    pub device_id: DeviceId,
    /// From this time (inclusive), Unix milliseconds.
    pub from_ms: Option<i64>,
    /// Until this time (exclusive), Unix milliseconds.
    pub to_ms: Option<i64>,
    /// Only these types (all when empty).
    pub types: Vec<EventType>,
    /// Page size, 1–1000.
    pub limit: u32,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<String>,
}

/// One page of events, newest first.
#[derive(Clone, Debug)]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// Cursor of the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// Rollup granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// UTC hours.
    Hour,
    /// UTC days.
    Day,
}

/// One bucket of a series.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// Bucket start, Unix milliseconds.
    pub bucket_start_ms: i64,
    /// Events in the bucket.
    pub count: i64,
    /// Events with a value.
    pub value_count: i64,
    /// Sum of values.
    pub sum: f64,
    /// Mean value.
    pub avg: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Sample standard deviation.
    pub stddev: Option<f64>,
}

fn time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), Invalid> {
    let bad = || Invalid::new("cursor", "not a cursor from a previous page");
    let (ms, id) = cursor.split_once('_').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    Ok((
        time(Some(ms)).ok_or_else(bad)?,
        Uuid::parse_str(id).map_err(|_| bad())?,
    ))
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

/// Sample standard deviation from the rollup's sums.
fn stddev(n: i64, sum: f64, sum_sq: f64) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let n = n as f64;
    Some(((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt())
}

impl PgEventStore {
    /// Raw events of a device, newest first.
    ///
    /// # Errors
    /// [`ReadError::Invalid`] for a bad cursor or limit.
    pub async fn events(&self, query: &EventQuery) -> Result<EventPage, ReadError> {
        if query.limit == 0 || query.limit > MAX_PAGE {
            return Err(Invalid::new("limit", "must be 1-1000").into());
        }
        let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
        let types: Vec<String> = query.types.iter().map(ToString::to_string).collect();
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
        .fetch_all(self.pool())
        .await?;
        let mut events = rows.iter().map(event_of).collect::<Result<Vec<_>, _>>()?;
        let more = events.len() > query.limit as usize;
        events.truncate(query.limit as usize);
        let next_cursor = more
            .then(|| events.last().map(|e| format!("{}_{}", e.ts_ms, e.event_id)))
            .flatten();
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    /// The series of one device and event type per hour or day, oldest
    /// first, read from the rollups.
    ///
    /// # Errors
    /// [`ReadError::Storage`] if the database fails.
    pub async fn aggregates(
        &self,
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
        let rows = sqlx::query(&sql)
            .bind(device_id.as_uuid())
            .bind(event_type.as_str())
            .bind(time(Some(from_ms)))
            .bind(time(Some(to_ms)))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(aggregate_of)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stddev_from_sums_matches_the_direct_formula() {
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let sum: f64 = values.iter().sum();
        let sum_sq: f64 = values.iter().map(|v| v * v).sum();
        let got = stddev(8, sum, sum_sq).unwrap();
        assert!((got - 2.138_089_935).abs() < 1e-6);
        assert_eq!(stddev(1, 1.0, 1.0), None);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        let (t, u) = parse_cursor(&format!("1764288000123_{id}")).unwrap();
        assert_eq!((t.timestamp_millis(), u), (1_764_288_000_123, id));
        assert!(parse_cursor("nope").is_err());
        assert!(parse_cursor("1_x").is_err());
    }
}
