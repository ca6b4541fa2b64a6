//! Run with: `cargo run --release -p hse-devices --features redis,postgres --example ingest_load`
//!
//! Measures the ingest path end to end on this machine: devices over TCP
//! (real protocol, pipelined frames), acks after the Redis `XADD`, the batch
//! writer into PostgreSQL with rollups. Prints the ack latency percentiles,
//! the acked rate and the stored rate. Uses `DATABASE_URL` (a scratch
//! database is created and dropped) and `HSE_REDIS_URL` (a random prefix,
//! deleted afterwards). Knobs: `DEVICES` (50), `FRAMES` (200 per device),
//! `EVENTS` (10 per frame), `WINDOW` (16 frames in flight per device).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hse_core::{DeviceId, Secret};
use hse_devices::commands::Connections;
use hse_devices::directory::MemoryDirectory;
use hse_devices::dlq::MemoryDeadLetters;
use hse_devices::feed::ChangeFeed;
use hse_devices::ingest::Ingest;
use hse_devices::postgres::{PgEventStore, migrate};
use hse_devices::redis::{Keys, RedisConsumer, RedisQueue, RedisState, connect};
use hse_devices::session::{SessionConfig, SessionContext};
use hse_devices::writer::{BatchWriter, WriterConfig};
use redis::AsyncCommands;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (devices, frames, per_frame, window) = (
        knob("DEVICES", 50),
        knob("FRAMES", 200),
        knob("EVENTS", 10),
        knob("WINDOW", 16),
    );
    let db_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let scratch = format!("hse_load_{}", uuid::Uuid::new_v4().simple());
    PgConnection::connect(&db_url)
        .await?
        .execute_raw(&format!("CREATE DATABASE {scratch}"))
        .await?;
    let base = db_url.rsplit_once('/').map_or(db_url.as_str(), |(b, _)| b);
    let pool = PgPool::connect(&format!("{base}/{scratch}")).await?;
    hse_core::postgres::migrate(&pool).await?;
    migrate(&pool).await?;

    let client = redis::Client::open(
        std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    )?;
    let prefix = format!("hse-load:{}:", uuid::Uuid::new_v4());
    let keys = Keys::new(&prefix);
    let conn = connect(&client, Duration::from_secs(5)).await?;
    let queue = Arc::new(RedisQueue::new(&client, keys.clone()).await?);
    let state = Arc::new(RedisState::new(conn.clone(), keys.clone()));
    let directory = Arc::new(MemoryDirectory::new());
    let stop = CancellationToken::new();
    let ctx = Arc::new(SessionContext {
        directory: directory.clone(),
        ingest: Ingest::new(queue.clone(), ChangeFeed::new(10_000), 1_000_000),
        connections: Arc::new(Connections::new()),
        state,
        config: SessionConfig::default(),
        shutdown: stop.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(hse_devices::tcp::run_until_stopped(listener, ctx, 10_000));
    let store = Arc::new(PgEventStore::new(pool.clone()));
    let consumer = RedisConsumer::new(&client, keys.clone(), "load-writer").await?;
    let writer = BatchWriter::new(
        Arc::new(consumer),
        store,
        Arc::new(MemoryDeadLetters::new()),
        WriterConfig::default(),
    );
    let writer = tokio::spawn(writer.run_until_stopped(stop.clone()));

    let latencies = Arc::new(Mutex::new(Vec::with_capacity(devices * frames)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..devices {
        let id = DeviceId::new();
        let secret = Secret::generate()?;
        directory.register(id, secret.hash());
        tasks.push(tokio::spawn(device(
            addr,
            id,
            secret,
            frames,
            per_frame,
            window,
            latencies.clone(),
        )));
    }
    for task in tasks {
        task.await??;
    }
    let acked_in = started.elapsed();
    let total = (devices * frames * per_frame) as i64;
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM device_events")
            .fetch_one(&pool)
            .await?;
        if stored >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored_in = started.elapsed();
    stop.cancel();
    writer.await?;

    let mut lat = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    println!(
        "devices={devices} frames/device={frames} events/frame={per_frame} window={window} events={total}"
    );
    println!(
        "ack latency per frame: p50={:?} p99={:?} max={:?}",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "acked:  {:.0} events/s ({:?})",
        total as f64 / acked_in.as_secs_f64(),
        acked_in
    );
    println!(
        "stored: {:.0} events/s end to end ({:?})",
        total as f64 / stored_in.as_secs_f64(),
        stored_in
    );

    pool.close().await;
    PgConnection::connect(&db_url)
        .await?
        .execute_raw(&format!("DROP DATABASE {scratch}"))
        .await?;
    let mut c = conn.clone();
    let leftovers: Vec<String> = c.keys(format!("{prefix}*")).await?;
    if !leftovers.is_empty() {
        let _: () = c.del(leftovers).await?;
    }
    Ok(())
}

trait ExecuteRaw {
    async fn execute_raw(&mut self, sql: &str) -> anyhow::Result<()>;
}

impl ExecuteRaw for PgConnection {
    async fn execute_raw(&mut self, sql: &str) -> anyhow::Result<()> {
        sqlx::raw_sql(sql).execute(self).await?;
        Ok(())
    }
}

async fn device(
    addr: std::net::SocketAddr,
    id: DeviceId,
    secret: Secret,
    frames: usize,
    per_frame: usize,
    window: usize,
    latencies: Arc<Mutex<Vec<Duration>>>,
) -> anyhow::Result<()> {
    let (read, mut write) = tokio::net::TcpStream::connect(addr).await?.into_split();
    let mut lines = BufReader::new(read).lines();
    let hello =
        serde_json::json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":1});
    write.write_all(format!("{hello}\n").as_bytes()).await?;
    lines.next_line().await?;
    let permits = Arc::new(Semaphore::new(window));
    let sent_at = Arc::new(Mutex::new(vec![Instant::now(); frames + 1]));
    let reader = {
        let (permits, sent_at) = (permits.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut acked = 0usize;
            while acked < frames {
                let Ok(Some(line)) = lines.next_line().await else {
                    break;
                };
                let frame: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let seq = frame["seq"].as_u64().unwrap_or(0) as usize;
                let now = Instant::now();
                let times = sent_at.lock().map(|t| t.clone()).unwrap_or_default();
                let mut lat = latencies.lock().map_err(|_| ()).ok();
                if seq <= acked || seq > frames {
                    continue;
                }
                if let Some(l) = lat.as_mut() {
                    l.extend(times[acked + 1..=seq].iter().map(|t| now - *t));
                }
                permits.add_permits(seq - acked);
                acked = seq;
            }
        })
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    for seq in 1..=frames {
        permits.acquire().await?.forget();
        let events: Vec<_> = (0..per_frame)
            .map(|i| serde_json::json!({"event_id":uuid::Uuid::now_v7(),"ts_ms":now_ms - i as i64,"event_type":"temperature","value":i,"unit":"C"}))
            .collect();
        let frame = serde_json::json!({"type":"events","seq":seq,"events":events});
        if let Ok(mut t) = sent_at.lock() {
            t[seq] = Instant::now();
        }
        write.write_all(format!("{frame}\n").as_bytes()).await?;
    }
    reader.await?;
    Ok(())
}
