//! The read side: raw events newest first with cursor paging, and
//! aggregates per hour or day.
//!
//! [`EventHistory`] is the port the gRPC service reads through; the
//! PostgreSQL store implements it from `device_events` and the rollups (so
//! a year of hourly points costs the same whatever the raw volume), and
//! [`MemorySink`] implements it for the embedded mode.
//!
//! Every read names the caller's [`Scope`]: PostgreSQL answers inside it
//! (row-level security on `device_events` and the rollups shows a scope
//! only its own devices' rows), so a read that skipped its authorization
//! check still could not cross tenants. The memory sink keeps no tenant
//! tree and answers whatever it is asked; in the embedded mode its caller
//! (the server) authorizes the device first.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use hse_core::{DeviceId, Scope};
use uuid::Uuid;

use crate::error::Invalid;
use crate::model::{Event, EventType};
use crate::writer::MemorySink;

/// Most events per page.
pub const MAX_PAGE: u32 = 1000;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A parameter (cursor, limit) is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The storage failed; the text is for logs.
    #[error("storage: {0}")]
    Storage(String),
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

impl EventQuery {
    /// Checks the limit and parses the cursor.
    ///
    /// # Errors
    /// [`Invalid`] naming `limit` or `cursor`.
    pub fn checked_cursor(&self) -> Result<Option<(DateTime<Utc>, Uuid)>, Invalid> {
        if self.limit == 0 || self.limit > MAX_PAGE {
            return Err(Invalid::new("limit", "must be 1-1000"));
        }
        self.cursor.as_deref().map(parse_cursor).transpose()
    }
}

/// One page of events, newest first.
#[derive(Clone, Debug)]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// Cursor of the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

impl EventPage {
    /// A page from up to `limit + 1` events, newest first.
    #[must_use]
    pub fn from_probe(mut events: Vec<Event>, limit: u32) -> Self {
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next_cursor = more.then(|| events.last().map(cursor_of)).flatten();
        Self {
            events,
            next_cursor,
        }
    }
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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Aggregate {
    /// Bucket start, Unix milliseconds.
    pub bucket_start_ms: i64,
    /// Events in the bucket.
    pub count: i64,
    /// Events with a value.
    pub value_count: i64,
    /// Sum of values; ±infinity once it passes the largest double (a
    /// value beyond ±1e300 makes it so at once).
    pub sum: f64,
    /// Mean value.
    pub avg: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Sample standard deviation; `None` under two values or once the
    /// sums overflowed.
    pub stddev: Option<f64>,
}

/// Reads stored events.
#[async_trait]
pub trait EventHistory: Send + Sync + fmt::Debug {
    /// Raw events of a device, newest first, as `scope` may see them.
    async fn events(&self, scope: &Scope, query: &EventQuery) -> Result<EventPage, ReadError>;
    /// The series of one device and event type, oldest bucket first, as
    /// `scope` may see it.
    async fn aggregates(
        &self,
        scope: &Scope,
        device_id: DeviceId,
        event_type: &EventType,
        bucket: Bucket,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Aggregate>, ReadError>;
}

/// The cursor that continues after `event`.
#[must_use]
pub fn cursor_of(event: &Event) -> String {
    format!("{}_{}", event.ts_ms, event.event_id)
}

/// Parses a cursor from [`cursor_of`].
///
/// # Errors
/// [`Invalid`] naming `cursor`.
pub fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), Invalid> {
    let bad = || Invalid::new("cursor", "not a cursor from a previous page");
    let (ms, id) = cursor.split_once('_').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let time = Utc.timestamp_millis_opt(ms).single().ok_or_else(bad)?;
    Ok((time, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// Sample standard deviation from a count, sum and sum of squares; `None`
/// under two values or when a sum overflowed (is not finite).
#[must_use]
pub fn stddev(n: i64, sum: f64, sum_sq: f64) -> Option<f64> {
    if n < 2 || !sum.is_finite() || !sum_sq.is_finite() {
        return None;
    }
    let n = n as f64;
    Some(((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt())
}

/// A value as the rollup sums count it: beyond ±1e300 it is ±infinity, as
/// in PostgreSQL's `hse_rollup_value` (migration `…300003`), so both stores
/// give the same sums.
fn rollup_value(v: f64) -> f64 {
    if v.abs() > 1e300 {
        f64::INFINITY.copysign(v)
    } else {
        v
    }
}

/// A square as the rollup sums count it, as PostgreSQL's
/// `hse_rollup_square`: infinity beyond |v| > 1e150, zero below 1e-150.
fn rollup_square(v: f64) -> f64 {
    if v.abs() > 1e150 {
        f64::INFINITY
    } else if v.abs() < 1e-150 {
        0.0
    } else {
        v * v
    }
}

fn bucket_start(ts_ms: i64, bucket: Bucket) -> i64 {
    let width = match bucket {
        Bucket::Hour => 3_600_000,
        Bucket::Day => 86_400_000,
    };
    ts_ms.div_euclid(width) * width
}

#[async_trait]
impl EventHistory for MemorySink {
    async fn events(&self, _scope: &Scope, query: &EventQuery) -> Result<EventPage, ReadError> {
        let cursor = query.checked_cursor()?;
        let key = |e: &Event| (e.ts_ms, e.event_id);
        let mut events: Vec<Event> = self
            .stored()
            .into_iter()
            .filter(|e| e.device_id == query.device_id)
            .filter(|e| query.from_ms.is_none_or(|f| e.ts_ms >= f))
            .filter(|e| query.to_ms.is_none_or(|t| e.ts_ms < t))
            .filter(|e| query.types.is_empty() || query.types.contains(&e.event_type))
            .filter(|e| cursor.is_none_or(|(t, id)| key(e) < (t.timestamp_millis(), id)))
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(key(e)));
        events.truncate(query.limit as usize + 1);
        Ok(EventPage::from_probe(events, query.limit))
    }

    async fn aggregates(
        &self,
        _scope: &Scope,
        device_id: DeviceId,
        event_type: &EventType,
        bucket: Bucket,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Aggregate>, ReadError> {
        let mut series: std::collections::BTreeMap<i64, Vec<Option<f64>>> = Default::default();
        for e in self.stored() {
            let start = bucket_start(e.ts_ms, bucket);
            if e.device_id == device_id
                && &e.event_type == event_type
                && start >= from_ms
                && start < to_ms
            {
                series.entry(start).or_default().push(e.value);
            }
        }
        Ok(series
            .into_iter()
            .map(|(start, values)| aggregate(start, &values))
            .collect())
    }
}

fn aggregate(bucket_start_ms: i64, values: &[Option<f64>]) -> Aggregate {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let n = present.len() as i64;
    let sum: f64 = present.iter().copied().map(rollup_value).sum();
    let sum_sq: f64 = present.iter().copied().map(rollup_square).sum();
    Aggregate {
        bucket_start_ms,
        count: values.len() as i64,
        value_count: n,
        sum,
        avg: (n > 0).then(|| sum / n as f64),
        min: present.iter().copied().reduce(f64::min),
        max: present.iter().copied().reduce(f64::max),
        stddev: stddev(n, sum, sum_sq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::EventSink;

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

    #[tokio::test]
    async fn memory_history_pages_newest_first_and_aggregates_per_hour() {
        let sink = MemorySink::new();
        let device = DeviceId::new();
        let kind = EventType::parse("t").unwrap();
        let events: Vec<Event> = (0..7)
            .map(|i| Event {
                event_id: Uuid::now_v7(),
                device_id: device,
                ts_ms: i * 1_000_000,
                event_type: kind.clone(),
                value: Some(i as f64),
                unit: None,
                metadata: None,
                source: None,
            })
            .collect();
        sink.store(&events).await.unwrap();
        let mut query = EventQuery {
            device_id: device,
            from_ms: None,
            to_ms: None,
            types: vec![],
            limit: 3,
            cursor: None,
        };
        let mut seen = Vec::new();
        loop {
            let page = sink.events(&Scope::Platform, &query).await.unwrap();
            seen.extend(page.events.iter().map(|e| e.ts_ms / 1_000_000));
            let Some(next) = page.next_cursor else { break };
            query.cursor = Some(next);
        }
        assert_eq!(seen, vec![6, 5, 4, 3, 2, 1, 0]);
        let hours = sink
            .aggregates(&Scope::Platform, device, &kind, Bucket::Hour, 0, 10_000_000)
            .await
            .unwrap();
        assert_eq!(
            hours.iter().map(|a| a.count).collect::<Vec<_>>(),
            vec![4, 3]
        );
        assert_eq!(hours[0].avg, Some(1.5));
    }
}
