//! What a Redis restart or pause must not leave behind, on a Redis of the
//! test's own (append-only file, `appendfsync always`, as `scripts/soak`
//! and `scripts/services` run it): the storage lag the queue reports does
//! not keep the stale `XINFO GROUPS` lag Redis 7.0 reports after it
//! replays its append-only file, and a gRPC subscriber gets each event once
//! however often a device resent it through a pause.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use hse_core::DeviceId;
use hse_devices::Event;
use hse_devices::breaker::BreakerSettings;
use hse_devices::client::DevicesClient;
use hse_devices::grpc::pb::SubscriptionRequest;
use hse_devices::queue::{DeliveryId, EventQueue, QueueConsumer};
use hse_devices::redis::{GROUP, Keys, RedisConsumer, RedisQueue};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::binary::{self, GRPC_TOKEN, ROOT, ROOT_PASSWORD};
use crate::cluster::{OwnRedis, node_env};
use crate::line_device::{LineDevice, register_locks};
use crate::writer::event;

/// Enqueues `n` events, then reads and acknowledges them all, as the
/// batch writer does.
async fn through(queue: &RedisQueue, consumer: &RedisConsumer, n: usize) {
    let device = DeviceId::new();
    let now = Utc::now().timestamp_millis();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|i| event(device, now + *i as i64))
            .collect();
        queue.enqueue(&events).await.unwrap();
    }
    let mut left = n;
    while left > 0 {
        let got = consumer
            .read(1000, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(!got.is_empty(), "{left} entries not delivered");
        left -= got.len();
        let ids: Vec<DeliveryId> = got.into_iter().map(|d| d.id).collect();
        consumer.ack(&ids).await.unwrap();
    }
}

/// The group's `lag` as `XINFO GROUPS` reports it (`None`: Redis cannot
/// tell).
async fn xinfo_lag(redis: &OwnRedis, stream: &str) -> Option<i64> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let groups: Vec<BTreeMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    let group = groups
        .into_iter()
        .find(|g| g.get("name") == Some(&redis::Value::BulkString(GROUP.into())))
        .expect("the writers' group");
    match group.get("lag") {
        Some(redis::Value::Int(n)) => Some(*n),
        _ => None,
    }
}

/// The queue once Redis has loaded its data set again.
async fn loaded(client: &redis::Client, keys: &Keys) -> RedisQueue {
    for _ in 0..200 {
        if let Ok(queue) = RedisQueue::new(client, keys.clone()).await {
            return queue;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis did not load its data set");
}

/// Waits for the append-only file rewrite Redis runs in the background.
async fn rewrite_aof(redis: &OwnRedis) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("BGREWRITEAOF")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..200 {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("aof_rewrite_in_progress:0") && !info.contains("aof_rewrite_scheduled:1") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the AOF rewrite did not finish");
}

/// Redis 7.0 writes `XREADGROUP` to its append-only file as `XCLAIM ...
/// LASTID`, which does not carry the group's `entries-read` counter: after
/// a crash the replayed group has the counter of the last AOF rewrite, and
/// `XINFO GROUPS` reports as lag every entry delivered since, for good (it
/// counts on from there). Nothing waits, so the queue's lag says 0.
#[tokio::test]
async fn the_storage_lag_ignores_the_stale_xinfo_lag_a_redis_restart_leaves() {
    let mut redis = OwnRedis::start().await;
    let client = redis::Client::open(redis.url()).unwrap();
    let keys = Keys::new("hse-lag:");
    let queue = RedisQueue::new(&client, keys.clone()).await.unwrap();
    let consumer = RedisConsumer::new(&client, keys.clone(), "writer-1")
        .await
        .unwrap();
    through(&queue, &consumer, 1000).await;
    rewrite_aof(&redis).await;
    through(&queue, &consumer, 3000).await;
    assert_eq!(xinfo_lag(&redis, &keys.events()).await, Some(0));
    assert_eq!(queue.storage_lag().await.unwrap().untaken, Some(0));

    redis.restart().await;
    let queue = loaded(&client, &keys).await;
    let consumer = RedisConsumer::new(&client, keys.clone(), "writer-1")
        .await
        .unwrap();
    through(&queue, &consumer, 500).await;
    assert_eq!(
        xinfo_lag(&redis, &keys.events()).await,
        Some(3000),
        "Redis reports the entries delivered since the rewrite as lag"
    );
    let lag = queue.storage_lag().await.unwrap();
    assert_eq!(lag.untaken, Some(0), "nothing waits: {lag:?}");
    assert_eq!(lag.oldest_untaken, Duration::ZERO);
}

/// Sends `events` under a new `seq` until a frame of them is acked,
/// reconnecting when the server closes the connection; how many times
/// they were resent.
async fn until_acked(
    device: &mut LineDevice,
    reconnect: impl AsyncFn() -> LineDevice,
    seq: &mut u64,
    events: &Value,
) -> u32 {
    let mut resent = 0;
    loop {
        *seq += 1;
        let sent = device
            .send(&json!({"type": "events", "seq": *seq, "events": events}))
            .await;
        let answer = match sent {
            Ok(()) => answer_to(device, *seq).await,
            Err(_) => None,
        };
        match answer {
            Some(frame) if frame["type"] == "ack" => return resent,
            Some(frame) => {
                let code = frame["code"].as_str().unwrap_or_default();
                assert!(
                    matches!(
                        code,
                        "overloaded" | "unavailable" | "outcome_unknown" | "shutting_down"
                    ),
                    "a retryable nack: {frame}"
                );
            }
            None => *device = reconnect().await,
        }
        resent += 1;
        assert!(resent < 200, "acked in the end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The answer (`ack` or `nack`) to frame `seq`; `None` when the
/// connection ended.
async fn answer_to(device: &mut LineDevice, seq: u64) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), device.recv())
            .await
            .ok()?
            .ok()??;
        let answered = frame["seq"].as_u64().is_some_and(|s| s >= seq);
        if matches!(frame["type"].as_str(), Some("ack" | "nack")) && answered {
            return Some(frame);
        }
    }
}

/// A device connection, retried until the server welcomes it.
async fn connect(addr: SocketAddr, lock: &str, secret: &str) -> LineDevice {
    for _ in 0..100 {
        if let Ok(device) = LineDevice::connect(addr, lock, secret).await {
            return device;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the device could not connect again");
}

/// A device streams events while Redis is paused longer than the enqueue
/// timeout, so frames are answered `outcome_unknown` and resent (the
/// paused copies are enqueued too, once Redis runs again); a gRPC
/// subscriber gets every acknowledged event, and each once: no event under
/// two cursors.
#[sqlx::test(migrations = false)]
async fn a_grpc_subscriber_gets_each_event_once_through_a_redis_pause(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let redis = OwnRedis::start().await;
    let mut env = node_env(&options, &redis, "pause-a").await;
    env.extend([
        ("HSE_GRPC_TOKEN", GRPC_TOKEN.to_owned()),
        ("HSE_INGEST_ENQUEUE_TIMEOUT_MS", "300".to_owned()),
    ]);
    let node = binary::start(env);
    let root = node.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let (lock, secret) = register_locks(&root, 1).await.unwrap().remove(0);
    let url = format!("http://{}", node.grpc.expect("grpc role"));
    let client = DevicesClient::connect_lazy(&url, BreakerSettings::default())
        .unwrap()
        .with_token(GRPC_TOKEN)
        .unwrap();
    let mut changes = client.subscribe(SubscriptionRequest {
        device_ids: vec![lock.clone()],
        event_types: vec!["temperature".into()],
        client_id: "pause".into(),
        resume_cursor: "0".into(),
    });
    let tcp = node.device_tcp.expect("ingest role");
    let mut device = connect(tcp, &lock, &secret).await;
    let pauser = {
        let url = redis.url();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let () = redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(2500)
                .arg("ALL")
                .query_async(&mut conn)
                .await
                .unwrap();
        })
    };
    let (mut seq, mut resent, mut acked) = (0, 0, BTreeSet::new());
    let now = Utc::now().timestamp_millis();
    for frame in 0..40 {
        let events: Vec<Value> = (0..10)
            .map(|i| {
                json!({"event_id": Uuid::now_v7(), "event_type": "temperature",
                       "value": 20.0, "ts_ms": now + frame * 10 + i})
            })
            .collect();
        let reconnect = async || connect(tcp, &lock, &secret).await;
        resent += until_acked(&mut device, reconnect, &mut seq, &json!(events)).await;
        acked.extend(
            events
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned()),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pauser.await.unwrap();
    assert!(resent > 0, "the pause made the device resend");

    let mut cursors: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut received = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let settled = cursors.len() >= acked.len();
        let wait = if settled {
            Duration::from_secs(2)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        let Ok(Some(change)) = tokio::time::timeout(wait, changes.recv()).await else {
            break;
        };
        let change = change.expect("a change, not an error");
        received += 1;
        cursors
            .entry(change.event_id)
            .or_default()
            .insert(change.cursor);
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !cursors.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acked events not followed",
        missing.len()
    );
    let twice: Vec<_> = cursors.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{received} changes for {} events ({resent} frames resent); {} under two cursors, e.g. {:?}",
        acked.len(),
        twice.len(),
        twice.first()
    );
}
