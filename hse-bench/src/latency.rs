//! Acknowledgement latency at fixed arrival rates (1k, 10k events/s and 80%
//! of the measured maximum), corrected for coordinated omission, against a
//! bare Redis `XADD` round trip of a frame-sized entry; storage lag (ack to
//! row visible) against a single-row `INSERT` + commit round trip.
//!
//! One more run repeats a rate with storage deferred (the batch writer held
//! back until every frame is answered, then drained and counted as usual):
//! the acknowledgement path alone, to tell its latency from what the
//! co-located PostgreSQL writer adds on two shared cores.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::env::Env;
use crate::load::{self, LoadSpec, histogram};
use crate::pipeline::{self, Pipeline};
use crate::report::{Figure, LoadCounts, Report};

const PER_FRAME: usize = 10;

/// Runs the section; `max_rate` comes from the ingest section.
pub(crate) async fn run(
    env: &Env,
    max_rate: Option<f64>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let scratch = env.scratch().await?;
    scratch.migrate_devices().await?;
    let mut pipeline = Pipeline::start(env, Some(&scratch.pool)).await?;
    let devices = pipeline.register(if env.smoke { 4 } else { 100 })?;
    let (mut rates, duration) = if env.smoke {
        (
            vec![
                ("200/s", 200.0, false),
                ("1k/s", 1_000.0, false),
                ("200/s, storage deferred", 200.0, true),
            ],
            Duration::from_secs(1),
        )
    } else {
        (
            vec![
                ("1k/s", 1_000.0, false),
                ("10k/s", 10_000.0, false),
                ("10k/s, storage deferred", 10_000.0, true),
            ],
            Duration::from_secs(10),
        )
    };
    match max_rate {
        Some(max) => rates.push(("80% of max", 0.8 * max, false)),
        None => report.note("latency: the 80%-of-max rate needs the ingest section; skipped"),
    }
    let samples = if env.smoke { 200 } else { 5_000 };
    for (label, rate, defer_storage) in rates {
        pipeline::truncate(&scratch.pool).await?;
        let xadd = xadd_baseline(env, samples).await?;
        let insert = insert_baseline(&scratch.pool, samples / 10).await?;
        let frames = (rate * duration.as_secs_f64()) as u64 / PER_FRAME as u64;
        let spec = LoadSpec {
            rate,
            duration,
            per_frame: PER_FRAME,
            probe_every: if defer_storage {
                0
            } else {
                (frames / 1000).max(1)
            },
            drain: Duration::from_secs(if env.smoke { 20 } else { 60 }),
            defer_storage,
        };
        let result = load::run(&mut pipeline, &devices, &scratch.pool, spec).await?;
        report.loads.push(LoadCounts {
            run: format!("latency at {label} ({rate:.0} events/s)"),
            sent: result.sent,
            acked: result.acked,
            stored: result.stored,
            nacked: result.nacked,
            nack_codes: result.nack_codes.clone(),
        });
        let at_10k = label == "10k/s";
        for (q, name) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
            let mut f = Figure::new(
                "latency",
                format!("ack {name} at {label}"),
                ms(&result.ack, q),
                "ms",
                format!("Redis XADD round trip {name}"),
                ms(&xadd, q),
            );
            if at_10k && name == "p99" {
                let met = f.value <= 2.0;
                f = f.target("≤ 2 ms", met);
            }
            report.add(f);
        }
        if defer_storage {
            report.note(format!(
                "latency at {label}: the batch writer was held back during the load and drained after it; generator lateness p99 {:.2} ms (included in ack latency)",
                ms(&result.lateness, 0.99)
            ));
            continue;
        }
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            let mut f = Figure::new(
                "latency",
                format!("storage lag {name} at {label}"),
                ms(&result.lag, q),
                "ms",
                format!("INSERT+commit round trip {name}"),
                ms(&insert, q),
            );
            if at_10k && name == "p99" {
                let met = f.value <= 1000.0;
                f = f.target("≤ 1000 ms", met);
            }
            report.add(f);
        }
        report.note(format!(
            "latency at {label}: generator lateness p99 {:.2} ms (included in ack latency), {} storage-lag probes polled every {} ms",
            ms(&result.lateness, 0.99),
            result.lag.len(),
            load::LAG_POLL.as_millis()
        ));
    }
    pipeline.stop().await?;
    scratch.drop_now().await?;
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Back-to-back `XADD`s of a frame-sized entry on one connection.
async fn xadd_baseline(env: &Env, samples: usize) -> anyhow::Result<Histogram<u64>> {
    let client = redis::Client::open(env.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = format!("{}xadd", Env::redis_prefix());
    let payload = "x".repeat(PER_FRAME * 130);
    let mut h = histogram();
    for _ in 0..samples {
        let at = Instant::now();
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg("frame")
            .arg(&payload)
            .query_async(&mut conn)
            .await?;
        h.saturating_record(u64::try_from(at.elapsed().as_micros())?);
    }
    let () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
    Ok(h)
}

/// Single-row autocommitted inserts into `device_events`.
async fn insert_baseline(pool: &sqlx::PgPool, samples: usize) -> anyhow::Result<Histogram<u64>> {
    let mut h = histogram();
    let device = uuid::Uuid::new_v4();
    for _ in 0..samples.max(10) {
        let at = Instant::now();
        sqlx::query("INSERT INTO device_events (time, device_id, event_id, event_type, value, unit) VALUES (now(), $1, $2, 'temperature', 1.5, 'C')")
            .bind(device)
            .bind(uuid::Uuid::new_v4())
            .execute(pool)
            .await?;
        h.saturating_record(u64::try_from(at.elapsed().as_micros())?);
    }
    pipeline::truncate(pool).await?;
    Ok(h)
}
