//! Chart query: one device, one year of hourly aggregates, with N raw
//! events in the table (10M in full mode, generated server-side with
//! `generate_series`): from the rollups (the library's own read path)
//! against the same answer computed from the raw events.

use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use hse_core::{DeviceId, Scope};
use hse_devices::history::{Bucket, EventHistory};
use hse_devices::model::EventType;
use hse_devices::postgres::PgEventStore;

use crate::env::Env;
use crate::report::{Figure, Report};

const RAW: &str = "SELECT date_trunc('hour', time) AS bucket, count(*), count(value), sum(value),
           min(value), max(value), sum(value * value)
    FROM device_events
    WHERE device_id = $1 AND event_type = $2 AND time >= $3 AND time < $4
    GROUP BY 1 ORDER BY 1";

/// Runs the section.
pub(crate) async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let scratch = env.scratch().await?;
    scratch.migrate_devices().await?;
    let rows: i64 = if env.smoke { 20_000 } else { 10_000_000 };
    let device = DeviceId::new();
    let to = Utc::now().duration_trunc(TimeDelta::hours(1))?;
    let from = to - TimeDelta::days(365);
    let generated = Instant::now();
    generate(&scratch.pool, device, rows, from, to).await?;
    report.note(format!(
        "chart: generated {rows} raw events and their rollups in {:.1?}",
        generated.elapsed()
    ));
    let store = PgEventStore::new(scratch.pool.clone());
    let kind = EventType::parse("temperature")?;
    let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
    let (rollup_runs, raw_runs) = if env.smoke { (5, 2) } else { (21, 3) };
    let mut rollup = Vec::new();
    let mut buckets = 0;
    for _ in 0..=rollup_runs {
        let at = Instant::now();
        let series = store
            .aggregates(
                &Scope::Platform,
                device,
                &kind,
                Bucket::Hour,
                from_ms,
                to_ms,
            )
            .await?;
        rollup.push(at.elapsed());
        buckets = series.len();
        anyhow::ensure!(
            series.iter().map(|a| a.count).sum::<i64>() == rows,
            "rollups do not add up"
        );
    }
    let mut raw = Vec::new();
    for _ in 0..=raw_runs {
        let at = Instant::now();
        let series = sqlx::query(RAW)
            .bind(device.as_uuid())
            .bind("temperature")
            .bind(from)
            .bind(to)
            .fetch_all(&scratch.pool)
            .await?;
        raw.push(at.elapsed());
        anyhow::ensure!(
            series.len() == buckets,
            "raw and rollups disagree on buckets"
        );
    }
    let (rollup, raw) = (median_ms(rollup), median_ms(raw));
    let f = Figure::new(
        "chart",
        format!("1 year hourly ({buckets} buckets) from rollups, {rows} raw events"),
        rollup,
        "ms",
        "same answer from raw events",
        raw,
    )
    .speedup();
    let met = f.value <= 20.0 && f.ratio >= 100.0;
    report.add(f.target("≤ 20 ms and ≥ 100× faster", met));
    scratch.drop_now().await?;
    Ok(())
}

/// Median of the timed runs (the first is a warm-up and dropped).
fn median_ms(mut runs: Vec<Duration>) -> f64 {
    runs.remove(0);
    runs.sort();
    runs[runs.len() / 2].as_secs_f64() * 1000.0
}

/// `rows` events spread evenly over `[from, to)`, the daily partitions
/// they need, and the hourly and daily rollups the batch writer would
/// have kept (same columns, same buckets).
async fn generate(
    pool: &sqlx::PgPool,
    device: DeviceId,
    rows: i64,
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query("SELECT hse_devices_ensure_partition(d::date) FROM generate_series($1::timestamptz AT TIME ZONE 'UTC', $2::timestamptz AT TIME ZONE 'UTC', interval '1 day') AS d")
        .bind(from)
        .bind(to)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO device_events (time, device_id, event_id, event_type, value, unit)
         SELECT $2::timestamptz + ($3::timestamptz - $2::timestamptz) * (i::float8 / $4), $1,
                gen_random_uuid(), 'temperature', 20 + 5 * sin(i / 1000.0), 'C'
         FROM generate_series(0, $4 - 1) AS i",
    )
    .bind(device.as_uuid())
    .bind(from)
    .bind(to)
    .bind(rows)
    .execute(pool)
    .await?;
    for (table, unit) in [
        ("device_rollups_hourly", "hour"),
        ("device_rollups_daily", "day"),
    ] {
        sqlx::raw_sql(&format!(
            "INSERT INTO {table} (device_id, event_type, bucket, event_count, value_count, value_sum, value_min, value_max, value_sum_sq)
             SELECT device_id, event_type, date_trunc('{unit}', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                    count(*), count(value), coalesce(sum(value), 0), min(value), max(value), coalesce(sum(value * value), 0)
             FROM device_events GROUP BY 1, 2, 3"
        ))
        .execute(pool)
        .await?;
    }
    sqlx::raw_sql("ANALYZE device_events; ANALYZE device_rollups_hourly")
        .execute(pool)
        .await?;
    Ok(())
}
