//! The device ingest pipeline in this process, through `hse-devices`'
//! public API: the TCP listener, acks after the Redis `XADD`, and (when
//! asked) the batch writer into PostgreSQL with rollups. The writer can
//! be held back while a load runs and started afterwards, to tell the
//! acknowledgement path's own latency from what co-located storage adds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hse_core::{DeviceId, Secret};
use hse_devices::commands::Connections;
use hse_devices::directory::MemoryDirectory;
use hse_devices::dlq::MemoryDeadLetters;
use hse_devices::feed::ChangeFeed;
use hse_devices::groups::{EventGroups, GroupName};
use hse_devices::ingest::Ingest;
use hse_devices::postgres::PgEventStore;
use hse_devices::queue::QueueConsumer;
use hse_devices::redis::{Keys, RedisConsumer, RedisQueue, RedisState, connect};
use hse_devices::session::{SessionConfig, SessionContext};
use hse_devices::writer::{BatchWriter, WriterConfig};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::env::Env;

/// A device's credentials.
#[derive(Debug)]
pub(crate) struct Device {
    /// Its id.
    pub(crate) id: DeviceId,
    /// Its secret.
    pub(crate) secret: Secret,
}

/// A running pipeline.
#[derive(Debug)]
pub(crate) struct Pipeline {
    /// Device TCP address.
    pub(crate) addr: SocketAddr,
    directory: Arc<MemoryDirectory>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    redis_url: String,
    prefix: String,
    writer: Option<Writer>,
}

/// What the batch writer needs, and the running one.
#[derive(Debug)]
struct Writer {
    client: redis::Client,
    keys: Keys,
    pool: PgPool,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Writer {
    async fn start(&mut self, stop: &CancellationToken) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let consumer = RedisConsumer::new(&self.client, self.keys.clone(), "bench-writer").await?;
        let writer = BatchWriter::new(
            Arc::new(consumer),
            Arc::new(PgEventStore::new(self.pool.clone())),
            Arc::new(MemoryDeadLetters::new()),
            WriterConfig::default(),
        );
        let token = stop.child_token();
        let task = tokio::spawn(writer.run_until_stopped(token.clone()));
        self.running = Some((token, task));
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some((token, task)) = self.running.take() {
            token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Pipeline {
    /// Starts the listener (and the batch writer on `pool` if given).
    pub(crate) async fn start(env: &Env, pool: Option<&PgPool>) -> anyhow::Result<Self> {
        let client = redis::Client::open(env.redis_url.as_str())?;
        let prefix = Env::redis_prefix();
        let keys = Keys::new(&prefix);
        let conn = connect(&client, Duration::from_secs(5)).await?;
        let queue = Arc::new(RedisQueue::new(&client, keys.clone()).await?);
        let directory = Arc::new(MemoryDirectory::new());
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        if env.extra_group {
            let group = GroupName::parse("bench-module")?;
            let follower = queue.register_group(&group, "bench-follower").await?;
            tasks.push(tokio::spawn(follow(follower, stop.clone())));
        }
        let ctx = Arc::new(SessionContext {
            directory: directory.clone(),
            ingest: Ingest::new(queue, ChangeFeed::new(10_000), 1_000_000),
            connections: Arc::new(Connections::new()),
            state: Arc::new(RedisState::new(conn, keys.clone())),
            config: SessionConfig::default(),
            shutdown: stop.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(hse_devices::tcp::run_until_stopped(
            listener, ctx, 50_000,
        )));
        let mut writer = pool.map(|pool| Writer {
            client,
            keys,
            pool: pool.clone(),
            running: None,
        });
        if let Some(writer) = &mut writer {
            writer.start(&stop).await?;
        }
        Ok(Self {
            addr,
            directory,
            stop,
            tasks,
            redis_url: env.redis_url.clone(),
            prefix,
            writer,
        })
    }

    /// Stops the batch writer (it flushes what it holds); entries wait in
    /// the Redis stream until [`Pipeline::resume_writer`].
    pub(crate) async fn pause_writer(&mut self) {
        if let Some(writer) = &mut self.writer {
            writer.stop().await;
        }
    }

    /// Starts the batch writer again (it resumes from the consumer group).
    pub(crate) async fn resume_writer(&mut self) -> anyhow::Result<()> {
        match &mut self.writer {
            Some(writer) => writer.start(&self.stop).await,
            None => Ok(()),
        }
    }

    /// Registers `n` devices and returns their credentials.
    pub(crate) fn register(&self, n: usize) -> anyhow::Result<Vec<Device>> {
        (0..n)
            .map(|_| {
                let device = Device {
                    id: DeviceId::new(),
                    secret: Secret::generate()?,
                };
                self.directory.register(device.id, device.secret.hash());
                Ok(device)
            })
            .collect()
    }

    /// Whether the batch writer has committed and acknowledged every
    /// queued entry (consumer group `lag` and `pending` both zero), read
    /// from Redis so the wait does not load PostgreSQL.
    pub(crate) async fn drained(&self) -> anyhow::Result<bool> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(Keys::new(&self.prefix).events())
            .query_async(&mut conn)
            .await?;
        let zero = |v: Option<&redis::Value>| matches!(v, Some(redis::Value::Int(0)));
        Ok(groups
            .iter()
            .all(|g| zero(g.get("pending")) && zero(g.get("lag"))))
    }

    /// Stops sessions and the writer (which flushes), deletes the keys.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        self.pause_writer().await;
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        crate::env::delete_prefix(&self.redis_url, &self.prefix).await
    }
}

/// A module's consumer that does nothing with what it reads but ack it,
/// as fast as the queue hands batches out (`--extra-group`).
async fn follow(consumer: Arc<dyn QueueConsumer>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = consumer.read(1000, Duration::from_secs(1)) => read,
        };
        let ids: Vec<_> = match read {
            Ok(batch) => batch.into_iter().map(|d| d.id).collect(),
            Err(e) => {
                eprintln!("hse-bench: extra group read failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if let Err(e) = consumer.ack(&ids).await {
            eprintln!("hse-bench: extra group ack failed: {e}");
        }
    }
}

/// Empties the event table and its rollups between runs.
pub(crate) async fn truncate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql("TRUNCATE device_events, device_rollups_hourly, device_rollups_daily")
        .execute(pool)
        .await?;
    Ok(())
}

/// Events stored in PostgreSQL.
pub(crate) async fn stored(pool: &PgPool) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM device_events")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n)?)
}
