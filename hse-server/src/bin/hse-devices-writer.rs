//! `hse-devices-writer`: the batch writer on its own, Redis Streams into
//! PostgreSQL, so ingest storage runs (and is restarted, or killed) apart
//! from the nodes that hold device connections.
//!
//! It is assembled by the server's own pipeline builder
//! ([`Devices::connect`]), so it stores through exactly the sinks the
//! server's writer has (the chart cache's invalidation, door-code uses
//! counted in booking), logs like the server (`HSE_LOG_FORMAT`,
//! `RUST_LOG`), and on SIGTERM or Ctrl-C stores and acknowledges the batch
//! in hand before it exits.
//!
//! Configuration: the server's variables (`HSE_DATABASE_URL`,
//! `HSE_DATABASE_MIGRATION_URL`, `HSE_REDIS_URL`, `HSE_REDIS_PREFIX`,
//! `HSE_LOG_FORMAT`, …) and its own:
//!
//! | variable | default |
//! |---|---|
//! | `HSE_WRITER_NAME` | `writer-1` (its consumer name; stable across restarts: it resumes its own pending entries) |
//! | `HSE_WRITER_BATCH_SIZE` | `1000` |
//! | `HSE_WRITER_BATCH_WAIT_MS` | `200` |
//! | `HSE_WRITER_CONCURRENCY` | `2` |

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hse_devices::commands::Connections;
use hse_devices::writer::WriterConfig;
use hse_server::backends::Backends;
use hse_server::devices::Devices;
use hse_server::{Config, shutdown_signal, telemetry};
use tokio_util::sync::CancellationToken;

/// What `--help` prints.
const USAGE: &str =
    "hse-devices-writer: the batch writer on its own, Redis Streams into PostgreSQL,
through the same sinks as hse-server's writer (chart cache, door-code uses)

Configured by the server's environment variables (HSE_DATABASE_URL required,
HSE_DATABASE_MIGRATION_URL, HSE_REDIS_URL [redis://127.0.0.1:6379],
HSE_REDIS_PREFIX, HSE_LOG_FORMAT, RUST_LOG, ...) and:
    HSE_WRITER_NAME           consumer name, stable across restarts [writer-1]
    HSE_WRITER_BATCH_SIZE     events per batch               [1000]
    HSE_WRITER_BATCH_WAIT_MS  longest wait to fill a batch   [200]
    HSE_WRITER_CONCURRENCY    batches stored at once         [2]
Stops on Ctrl-C / SIGTERM after storing the batch in hand.";

/// A variable of the process, unset when blank.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: u64) -> anyhow::Result<u64> {
    var(name).map_or(Ok(default), |v| {
        v.parse()
            .with_context(|| format!("{name} must be a whole number"))
    })
}

/// The server's configuration, with the writer's name as the node name and
/// Redis at its default address when unset.
fn config() -> anyhow::Result<Config> {
    let config = Config::from_lookup(|name| match name {
        "HSE_NODE_NAME" => var("HSE_WRITER_NAME").or_else(|| Some("writer-1".into())),
        "HSE_REDIS_URL" => var(name).or_else(|| Some("redis://127.0.0.1:6379".into())),
        other => var(other),
    })?;
    anyhow::ensure!(
        config.database_url.is_some(),
        "HSE_DATABASE_URL is required"
    );
    Ok(config)
}

fn writer_config() -> anyhow::Result<WriterConfig> {
    Ok(WriterConfig {
        batch_size: usize::try_from(number("HSE_WRITER_BATCH_SIZE", 1000)?)?,
        batch_wait: Duration::from_millis(number("HSE_WRITER_BATCH_WAIT_MS", 200)?),
        concurrency: usize::try_from(number("HSE_WRITER_CONCURRENCY", 2)?)?.max(1),
        ..WriterConfig::default()
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let config = config()?;
    let writer_config = writer_config()?;
    telemetry::init(config.log_format);
    let backends = Backends::connect(&config).await?;
    let bookings = hse_server::bookings::service(&config, &backends);
    let devices =
        Devices::connect(&config, &backends, Arc::new(Connections::new()), bookings).await?;
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: storing the batch in hand");
        signal.cancel();
    });
    tracing::info!(writer.name = %config.node_name, "devices writer up");
    devices.writer(writer_config).run_until_stopped(stop).await;
    tracing::info!("devices writer stopped");
    Ok(())
}
