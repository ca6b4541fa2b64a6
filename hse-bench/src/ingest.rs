//! Ingest throughput: devices over TCP → acked → stored with rollups, under
//! an open-model load well above what the machine sustains, against a raw
//! `COPY` of the same number of rows into the same table.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::env::Env;
use crate::load::{self, LoadSpec};
use crate::pipeline::{self, Pipeline};
use crate::report::{Figure, LoadCounts, Report};

/// Runs the section; returns the sustained end-to-end rate (events/s).
pub(crate) async fn run(env: &Env, report: &mut Report) -> anyhow::Result<f64> {
    let scratch = env.scratch().await?;
    scratch.migrate_devices().await?;
    let mut pipeline = Pipeline::start(env, Some(&scratch.pool)).await?;
    let (devices, spec) = if env.smoke {
        (
            4,
            LoadSpec {
                rate: 4_000.0,
                duration: Duration::from_secs(1),
                per_frame: 10,
                probe_every: 0,
                drain: Duration::from_secs(20),
                defer_storage: false,
            },
        )
    } else {
        (
            100,
            LoadSpec {
                rate: 150_000.0,
                duration: Duration::from_secs(10),
                per_frame: 10,
                probe_every: 0,
                drain: Duration::from_secs(120),
                defer_storage: false,
            },
        )
    };
    let devices = pipeline.register(devices)?;
    let result = load::run(&mut pipeline, &devices, &scratch.pool, spec).await?;
    pipeline.stop().await?;
    report.loads.push(LoadCounts {
        run: format!("ingest, offered {:.0} events/s", spec.rate),
        sent: result.sent,
        acked: result.acked,
        stored: result.stored,
        nacked: result.nacked,
        nack_codes: result.nack_codes.clone(),
    });
    pipeline::truncate(&scratch.pool).await?;
    let ids: Vec<Uuid> = devices.iter().map(|d| d.id.as_uuid()).collect();
    let copy_rate = copy_rate(&scratch.pool, &ids, result.stored).await?;
    report.add(
        Figure::new(
            "ingest",
            "end to end (TCP → ack → stored + rollups)",
            result.stored_rate,
            "events/s",
            "raw COPY, same rows, same table",
            copy_rate,
        )
        .target(
            "≥ 100000/s and ≥ 0.30 of COPY",
            result.stored_rate >= 100_000.0 && result.stored_rate >= 0.3 * copy_rate,
        ),
    );
    report.note(format!(
        "ingest: offered {:.0} events/s for {:?} from {} devices ({} events/frame); acked at {:.0} events/s",
        spec.rate, spec.duration, devices.len(), spec.per_frame, result.acked_rate
    ));
    scratch.drop_now().await?;
    Ok(result.stored_rate)
}

/// Rows per second of one `COPY ... FROM STDIN` of `rows` events spread
/// over `devices`, timed from the first byte to the commit.
pub(crate) async fn copy_rate(
    pool: &sqlx::PgPool,
    devices: &[Uuid],
    rows: u64,
) -> anyhow::Result<f64> {
    let now = Utc::now();
    let mut csv = String::with_capacity(usize::try_from(rows)? * 120);
    for i in 0..rows {
        let device = devices[usize::try_from(i)? % devices.len()];
        let time = now - chrono::Duration::milliseconds(i64::try_from(i % 1000)?);
        let _ = writeln!(
            csv,
            "{},{device},{},temperature,{}.5,C",
            time.format("%Y-%m-%d %H:%M:%S%.3f+00"),
            Uuid::new_v4(),
            i % 40
        );
    }
    let mut conn = pool.acquire().await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY device_events (time, device_id, event_id, event_type, value, unit) FROM STDIN (FORMAT csv)")
        .await?;
    for chunk in csv.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    let copied = copy.finish().await?;
    let took = started.elapsed();
    anyhow::ensure!(copied == rows, "COPY stored {copied} of {rows} rows");
    Ok(rows as f64 / took.as_secs_f64())
}
