//! The standalone `hse-devices-writer` binary (built from the server's own
//! pipeline builder) against the test's PostgreSQL and Redis: SIGTERM
//! stores the batch in hand through the server's sinks before it exits,
//! also under load (door-code uses and the chart the API serves), and
//! repeated SIGKILLs lose and duplicate nothing.

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

use crate::binary::{self, ROOT, ROOT_PASSWORD};
use crate::cluster::{confirmed_stay, hotel};
use crate::http::Api;
use crate::services;

const HOUR_MS: i64 = 3_600_000;

/// A temperature event of `device` at `ts_ms`, with a fresh id.
pub(crate) fn event(device_id: DeviceId, ts_ms: i64) -> Event {
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

    /// The ids of the stored events, sorted.
    async fn stored_ids(&self) -> Vec<uuid::Uuid> {
        let mut ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM device_events")
            .fetch_all(&self.owner)
            .await
            .unwrap();
        ids.sort();
        ids
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

/// Sends the writer SIGTERM (with `kill`, as an orchestrator would) and
/// waits for it to exit successfully.
async fn sigterm(writer: &mut Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &writer.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = exited(writer, Duration::from_secs(15))
        .await
        .expect("the writer exits after SIGTERM");
    assert!(status.success(), "{status}");
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
    sigterm(&mut writer).await;

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

    let stored = rig.stored_ids().await;
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

/// The start of the hour `hours` hours before the current one, in ms.
fn hour_start(hours: i64) -> i64 {
    let now = Utc::now().timestamp_millis();
    now.div_euclid(HOUR_MS) * HOUR_MS - hours * HOUR_MS
}

/// `GET /v1/devices/{lock}/aggregates` of temperature, hourly, over the
/// closed hours `[from, to)`: the events counted.
async fn charted(api: &Api, lock: &str, from: i64, to: i64) -> i64 {
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let path = format!(
        "/v1/devices/{lock}/aggregates?bucket=hour&event_type=temperature&from={}&to={}",
        urlencoded(&at(from)),
        urlencoded(&at(to)),
    );
    let series = api.get(&path).await.unwrap();
    let items = series["items"].as_array().cloned().unwrap_or_default();
    items.iter().filter_map(|b| b["count"].as_i64()).sum()
}

fn urlencoded(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

/// The booking's door code uses, as the API reports them.
async fn uses(api: &Api, booking: &str) -> i64 {
    let codes = api
        .get(&format!("/v1/bookings/{booking}/doorlock-codes"))
        .await
        .unwrap();
    codes["items"][0]["usage_count"].as_i64().unwrap_or(-1)
}

/// One round of the load: 99 late temperatures and one `code_used` of
/// `code` from `lock`.
fn round(lock: DeviceId, code: &str, base: i64) -> Vec<Event> {
    let mut batch: Vec<Event> = (0..99).map(|i| event(lock, base + i)).collect();
    let mut used = event(lock, base + 99);
    used.event_type = EventType::parse("code_used").unwrap();
    used.value = None;
    used.metadata = serde_json::json!({"code_id": code}).as_object().cloned();
    batch.push(used);
    batch
}

/// The standalone writer under load, SIGTERMed mid-stream and started
/// again: every event the queue acknowledged is stored once, each
/// `code_used` is counted once in the booking's usage count the API
/// reports (the door-code-use sink), and the chart the API serves from
/// its rollup cache, read (and cached) before the events came, counts
/// them all afterwards (the cache-invalidating sink).
#[sqlx::test(migrations = false)]
async fn a_sigtermed_writer_under_load_feeds_both_sinks(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let rig = Rig::new(&options).await;
    let mut env = rig.env.clone();
    env.extend([
        ("HSE_ROLES", "api".to_owned()),
        ("HSE_ROOT_PASSWORD", ROOT_PASSWORD.to_owned()),
    ]);
    let api_node = binary::start(env);
    let root = api_node.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let hotel = hotel(&root, 1).await;
    let booking = confirmed_stay(&root, &hotel, 0, 30).await;
    let codes = root
        .get(&format!("/v1/bookings/{booking}/doorlock-codes"))
        .await
        .unwrap();
    let code = codes["items"][0]["id"].as_str().expect("a code").to_owned();
    let lock_id = &hotel.locks[0].0;
    let lock: DeviceId = lock_id.parse().unwrap();
    let (from, to) = (hour_start(3), hour_start(1));
    assert_eq!(charted(&root, lock_id, from, to).await, 0, "cached empty");

    let queue = rig.queue().await;
    const ROUNDS: i64 = 300;
    let producer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for r in 0..ROUNDS {
            let batch = round(lock, &code, from + HOUR_MS / 2 + r * 100);
            queue.enqueue(&batch).await.unwrap();
            acked.extend(batch.iter().map(|e| e.event_id));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked
    });
    let fast = [
        ("HSE_WRITER_BATCH_SIZE", "500"),
        ("HSE_WRITER_BATCH_WAIT_MS", "100"),
    ];
    let mut writer = rig.spawn(&fast, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while rig.count("SELECT count(*) FROM device_events").await < 1000 {
        assert!(tokio::time::Instant::now() < deadline, "the writer stores");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!producer.is_finished(), "SIGTERM comes mid-stream");
    sigterm(&mut writer).await;
    assert_eq!(rig.pending().await, 0, "it stored and acked what it held");
    let mid = rig.count("SELECT count(*) FROM device_events").await;
    let mut acked = producer.await.unwrap();
    assert!(
        0 < mid && mid < acked.len() as i64,
        "stopped mid-stream: {mid}"
    );

    let mut writer = rig.spawn(&fast, false);
    for _ in 0..1500 {
        if rig.count("SELECT count(*) FROM device_events").await >= acked.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&mut writer).await;

    let stored = rig.stored_ids().await;
    acked.sort();
    assert_eq!(stored, acked, "every acknowledged event stored once");
    assert_eq!(
        uses(&root, &booking).await,
        ROUNDS,
        "each code_used counted once"
    );
    assert_eq!(
        charted(&root, lock_id, from, to).await,
        ROUNDS * 99,
        "the chart the API serves counts them all"
    );
    drop(api_node);
    rig.forget_redis().await;
}
