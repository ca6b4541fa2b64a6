//! The standalone `hse-devices-writer` binary (built from the server's own
//! pipeline builder) against the test's PostgreSQL and Redis: SIGTERM
//! stores the batch in hand through the server's sinks before it exits,
//! and repeated SIGKILLs lose and duplicate nothing.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hse_core::DeviceId;
use hse_devices::dlq::DeadLetters;
use hse_devices::queue::EventQueue;
use hse_devices::redis::{GROUP, Keys, RedisDeadLetters, RedisQueue, connect};
use hse_devices::{Event, EventType};
use redis::AsyncCommands;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::services;

const HOUR_MS: i64 = 3_600_000;

fn event(device_id: DeviceId, ts_ms: i64) -> Event {
    Event {
        event_id: uuid::Uuid::now_v7(),
        device_id,
        ts_ms,
        event_type: EventType::parse("temperature").unwrap(),
        value: Some(1.0),
        unit: None,
        metadata: None,
        source: Some("tcp".into()),
    }
}

/// The test's services, the writer's extra variables, and the owner's pool.
struct Rig {
    env: Vec<(&'static str, String)>,
    owner: PgPool,
    client: redis::Client,
    keys: Keys,
}

impl Rig {
    async fn new(options: &PgConnectOptions) -> Self {
        let env = services::env(options).await;
        let owner = PgPool::connect(services::value(&env, "HSE_DATABASE_MIGRATION_URL"))
            .await
            .unwrap();
        let client = redis::Client::open(services::value(&env, "HSE_REDIS_URL")).unwrap();
        let keys = Keys::new(services::value(&env, "HSE_REDIS_PREFIX"));
        Self {
            env,
            owner,
            client,
            keys,
        }
    }

    /// Starts the writer with `extra` variables; its logs are piped when
    /// `logs` (read them all, or the pipe fills), else dropped.
    fn spawn(&self, extra: &[(&str, &str)], logs: bool) -> Child {
        Command::new(env!("CARGO_BIN_EXE_hse-devices-writer"))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("HSE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(extra.iter().copied())
            .stdout(if logs { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::null())
            .spawn()
            .expect("the writer starts")
    }

    async fn queue(&self) -> Arc<RedisQueue> {
        Arc::new(
            RedisQueue::new(&self.client, self.keys.clone())
                .await
                .unwrap(),
        )
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.owner)
            .await
            .unwrap()
    }

    /// Entries delivered to a writer and not yet acknowledged.
    async fn pending(&self) -> i64 {
        let mut conn = connect(&self.client, Duration::from_secs(5)).await.unwrap();
        let summary: redis::RedisResult<redis::streams::StreamPendingReply> =
            conn.xpending(self.keys.events(), GROUP).await;
        summary.map_or(0, |s| s.count() as i64)
    }

    async fn forget_redis(&self) {
        services::forget_redis(&self.env).await;
    }
}

/// Waits for `child` to exit, at most `within`.
async fn exited(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[sqlx::test(migrations = false)]
async fn sigterm_stores_the_batch_in_hand_through_the_servers_sinks(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let rig = Rig::new(&options).await;
    let queue = rig.queue().await;
    let device = DeviceId::new();
    // Late events (an earlier hour): the chart cache's sink must bump the
    // series' version once they are stored.
    let late = Utc::now().timestamp_millis() - 2 * HOUR_MS;
    let events: Vec<Event> = (0..300).map(|i| event(device, late + i)).collect();
    queue.enqueue(&events).await.unwrap();
    // One batch that waits far longer than the test to fill up.
    let mut writer = rig.spawn(
        &[
            ("HSE_WRITER_BATCH_SIZE", "100000"),
            ("HSE_WRITER_BATCH_WAIT_MS", "60000"),
        ],
        true,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rig.pending().await < 300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer read the events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        rig.count("SELECT count(*) FROM device_events").await,
        0,
        "still in hand"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &writer.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = exited(&mut writer, Duration::from_secs(15))
        .await
        .expect("the writer exits after SIGTERM");
    assert!(status.success(), "{status}");

    assert_eq!(rig.count("SELECT count(*) FROM device_events").await, 300);
    assert_eq!(rig.pending().await, 0, "every entry acknowledged");
    let mut conn = connect(&rig.client, Duration::from_secs(5)).await.unwrap();
    let version: Option<i64> = conn
        .get(format!("{}aggv:{device}:temperature", rig.keys.prefix()))
        .await
        .unwrap();
    assert!(version.is_some(), "the chart cache was invalidated");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut writer.stdout.take().unwrap(), &mut logs).unwrap();
    assert!(
        logs.contains("devices writer stopped"),
        "it logs like the server: {logs}"
    );
    rig.forget_redis().await;
}

/// The crash drill with the real process: while 50 000 events with unique
/// ids are enqueued, the writer is SIGKILLed 12 times at different points
/// and restarted; afterwards the stored ids equal the acknowledged ids,
/// rollups count each once, and nothing is pending or dead-lettered.
#[sqlx::test(migrations = false)]
async fn a_writer_process_sigkilled_repeatedly_loses_and_duplicates_nothing(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let rig = Rig::new(&options).await;
    let queue = rig.queue().await;
    let fast = [
        ("HSE_WRITER_BATCH_SIZE", "1000"),
        ("HSE_WRITER_BATCH_WAIT_MS", "50"),
    ];
    let producer = {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            let base = Utc::now().timestamp_millis() - 2 * HOUR_MS;
            let mut acked = Vec::with_capacity(50_000);
            for round in 0..250 {
                let device = DeviceId::new();
                let batch: Vec<_> = (0..200)
                    .map(|i| event(device, base + round * 200 + i))
                    .collect();
                queue.enqueue(&batch).await.unwrap();
                acked.extend(batch.iter().map(|e| e.event_id));
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            acked
        })
    };
    for lifetime in [150, 700, 300, 450, 200, 650, 250, 500, 350, 600, 400, 550] {
        let mut child = rig.spawn(&fast, false);
        tokio::time::sleep(Duration::from_millis(lifetime)).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut acked = producer.await.unwrap();
    let mut child = rig.spawn(&fast, false);
    for _ in 0..3000 {
        if rig.count("SELECT count(*) FROM device_events").await >= acked.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let mut stored: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM device_events")
        .fetch_all(&rig.owner)
        .await
        .unwrap();
    stored.sort();
    acked.sort();
    assert_eq!(stored.len(), 50_000);
    assert_eq!(stored, acked);
    let counted = rig
        .count("SELECT sum(event_count)::bigint FROM device_rollups_hourly")
        .await;
    assert_eq!(counted, 50_000);
    let mut conn = connect(&rig.client, Duration::from_secs(5)).await.unwrap();
    let len: u64 = conn.xlen(rig.keys.events()).await.unwrap();
    assert_eq!(len, 0, "entries left in the stream");
    let dlq = RedisDeadLetters::new(conn, rig.keys.clone());
    assert!(dlq.list(false, 10).await.unwrap().is_empty());
    assert!(dlq.list(true, 10).await.unwrap().is_empty());
    rig.forget_redis().await;
}
