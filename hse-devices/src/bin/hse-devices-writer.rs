//! A standalone batch writer process: Redis Streams into PostgreSQL.
//!
//! Lets ingest storage run (and be restarted, or killed) apart from the
//! nodes that hold device connections. Configuration:
//!
//! | variable | default |
//! |---|---|
//! | `HSE_DATABASE_URL` | required (the application role; its transactions set the system scope) |
//! | `HSE_DATABASE_MIGRATION_URL` | `HSE_DATABASE_URL` (the schema owner, to apply hse-core's and hse-devices' migrations: the event tables' row-level security builds on hse-core's) |
//! | `HSE_REDIS_URL` | `redis://127.0.0.1:6379` |
//! | `HSE_REDIS_PREFIX` | `hse:` |
//! | `HSE_WRITER_NAME` | `writer-1` (stable across restarts: it resumes its own pending entries) |
//! | `HSE_WRITER_BATCH_SIZE` | `1000` |
//! | `HSE_WRITER_BATCH_WAIT_MS` | `200` |
//! | `HSE_WRITER_CONCURRENCY` | `2` |
//!
//! Stops on Ctrl-C / SIGTERM after storing the batch in hand.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use hse_devices::postgres::{PgEventStore, migrate};
use hse_devices::redis::{Keys, RedisConsumer, RedisDeadLetters, connect};
use hse_devices::writer::{BatchWriter, WriterConfig};
use tokio_util::sync::CancellationToken;

/// What `--help` prints.
const USAGE: &str = "hse-devices-writer: the batch writer on its own, Redis Streams into PostgreSQL

Configured by environment variables:
    HSE_DATABASE_URL          PostgreSQL, the application role (required)
    HSE_DATABASE_MIGRATION_URL  PostgreSQL, the schema owner, to migrate with [HSE_DATABASE_URL]
    HSE_REDIS_URL             Redis                          [redis://127.0.0.1:6379]
    HSE_REDIS_PREFIX          key prefix                     [hse:]
    HSE_WRITER_NAME           consumer name, stable across restarts [writer-1]
    HSE_WRITER_BATCH_SIZE     events per batch               [1000]
    HSE_WRITER_BATCH_WAIT_MS  longest wait to fill a batch   [200]
    HSE_WRITER_CONCURRENCY    batches stored at once         [2]
Stops on Ctrl-C / SIGTERM after storing the batch in hand.";

fn var(name: &str, default: Option<&str>) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .or_else(|| default.map(str::to_owned))
        .ok_or_else(|| format!("{name} is required"))
}

fn number(name: &str, default: u64) -> Result<u64, String> {
    var(name, Some(&default.to_string()))?
        .parse()
        .map_err(|_| format!("{name} must be a whole number"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let database_url = var("HSE_DATABASE_URL", None)?;
    let client = redis::Client::open(var("HSE_REDIS_URL", Some("redis://127.0.0.1:6379"))?)?;
    let keys = Keys::new(&var("HSE_REDIS_PREFIX", Some("hse:"))?);
    let name = var("HSE_WRITER_NAME", Some("writer-1"))?;
    let config = WriterConfig {
        batch_size: usize::try_from(number("HSE_WRITER_BATCH_SIZE", 1000)?)?,
        batch_wait: Duration::from_millis(number("HSE_WRITER_BATCH_WAIT_MS", 200)?),
        concurrency: usize::try_from(number("HSE_WRITER_CONCURRENCY", 2)?)?.max(1),
        ..WriterConfig::default()
    };

    let migration_url = var("HSE_DATABASE_MIGRATION_URL", Some(&database_url))?;
    let owner = sqlx::PgPool::connect(&migration_url).await?;
    hse_core::postgres::migrate(&owner).await?;
    migrate(&owner).await?;
    owner.close().await;
    let pool = sqlx::PgPool::connect(&database_url).await?;
    let conn = connect(&client, Duration::from_secs(5)).await?;
    let consumer = RedisConsumer::new(&client, keys.clone(), &name).await?;
    let writer = BatchWriter::new(
        Arc::new(consumer),
        Arc::new(PgEventStore::new(pool)),
        Arc::new(RedisDeadLetters::new(conn, keys)),
        config,
    );
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.cancel();
    });
    writer.run_until_stopped(stop).await;
    Ok(())
}
