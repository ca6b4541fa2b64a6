//! The PostgreSQL event store and the whole pipeline against PostgreSQL 15
//! (`DATABASE_URL`) and Redis 7 (`HSE_REDIS_URL`).
#![cfg(all(feature = "postgres", feature = "redis"))]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hse_core::{DeviceId, Scope};
use hse_devices::dlq::{DeadLetters, MemoryDeadLetters};
use hse_devices::history::{Bucket, EventHistory, EventQuery};
use hse_devices::postgres::{PgEventStore, classify, migrate};
use hse_devices::queue::EventQueue;
use hse_devices::redis::{Keys, RedisConsumer, RedisDeadLetters, RedisQueue, connect};
use hse_devices::writer::{BatchWriter, EventSink, WriterConfig};
use hse_devices::{Event, EventType, SinkError};
use redis::AsyncCommands;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const HOUR_MS: i64 = 3_600_000;

async fn store(pool: PgPool) -> PgEventStore {
    hse_core::postgres::migrate(&pool).await.unwrap();
    migrate(&pool).await.unwrap();
    migrate(&pool).await.unwrap();
    // As the application role (row-level security applies); `pool`, the
    // owner, stays with the test for its counts.
    PgEventStore::new(hse_core::postgres::app_pool(&pool, 4).await.unwrap())
}

fn now_hour() -> i64 {
    let now = Utc::now().timestamp_millis();
    now - now % HOUR_MS - 2 * HOUR_MS
}

fn event(device_id: DeviceId, kind: &str, ts_ms: i64, value: Option<f64>) -> Event {
    Event {
        event_id: uuid::Uuid::now_v7(),
        device_id,
        ts_ms,
        event_type: EventType::parse(kind).unwrap(),
        value,
        unit: Some("C".into()),
        metadata: serde_json::json!({"fw": "1.2.3"}).as_object().cloned(),
        source: Some("tcp".into()),
    }
}

/// The hourly rollups of `kind` for the two hours from `base`.
async fn two_hours<S: EventHistory>(
    store: &S,
    device: DeviceId,
    kind: &str,
    base: i64,
) -> Vec<hse_devices::history::Aggregate> {
    let kind = EventType::parse(kind).unwrap();
    let to = base + 2 * HOUR_MS;
    store
        .aggregates(&Scope::Platform, device, &kind, Bucket::Hour, base, to)
        .await
        .expect("aggregates read")
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn batches_are_idempotent_and_rollups_count_only_inserted_rows(pool: PgPool) {
    let store = store(pool.clone()).await;
    let device = DeviceId::new();
    let base = now_hour();
    let events: Vec<_> = (0..100)
        .map(|i| event(device, "temperature", base + i * 60_000, Some(i as f64)))
        .collect();
    assert_eq!(store.store(&events[..60]).await.unwrap(), 60);
    assert_eq!(store.store(&events).await.unwrap(), 40);
    assert_eq!(store.store(&events).await.unwrap(), 0);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM device_events").await,
        100
    );
    assert_eq!(
        count(
            &pool,
            "SELECT sum(event_count)::bigint FROM device_rollups_hourly"
        )
        .await,
        100
    );
    assert_eq!(
        count(
            &pool,
            "SELECT sum(event_count)::bigint FROM device_rollups_daily"
        )
        .await,
        100
    );

    let hours = two_hours(&store, device, "temperature", base).await;
    assert_eq!(
        hours.iter().map(|a| a.count).collect::<Vec<_>>(),
        vec![60, 40]
    );
    let first = &hours[0];
    assert_eq!(
        (first.min, first.max, first.sum),
        (Some(0.0), Some(59.0), (0..60).sum::<i64>() as f64)
    );
    assert_eq!(first.avg, Some(29.5));
    let direct: f64 =
        sqlx::query_scalar("SELECT stddev_samp(value) FROM device_events WHERE time < $1")
            .bind(Utc.timestamp_millis_opt(base + HOUR_MS).unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!((first.stddev.unwrap() - direct).abs() < 1e-9);
}

/// Any finite value a device may send is stored and rolled up: where
/// PostgreSQL's float8 arithmetic would fail (1e200², 1e-200², two values
/// near the largest double), the sums saturate to infinity or zero, the
/// same in memory and on PostgreSQL. Metadata numbers come back exact.
async fn extreme_values_are_stored_and_rolled_up<S: EventSink + EventHistory>(store: &S) {
    let device = DeviceId::new();
    let base = now_hour();
    let huge = [1e200, 1e200, 1e-200, 1.7e308, 1.7e308, 2.0];
    let tiny = [1e-200, 1e-200, 3.0];
    let mut events: Vec<Event> = huge
        .iter()
        .enumerate()
        .map(|(i, &v)| event(device, "t", base + i as i64, Some(v)))
        .chain(
            tiny.iter()
                .enumerate()
                .map(|(i, &v)| event(device, "t", base + HOUR_MS + i as i64, Some(v))),
        )
        .collect();
    let meta = serde_json::json!({"max": f64::MAX, "subnormal": 5e-324, "min": f64::MIN});
    events[0].metadata = meta.as_object().cloned();
    // Two batches per bucket: the sums are combined across batches too.
    assert_eq!(store.store(&events[..4]).await.expect("first batch"), 4);
    assert_eq!(store.store(&events[4..]).await.expect("second batch"), 5);

    let hours = two_hours(store, device, "t", base).await;
    assert_eq!(hours.len(), 2, "{hours:?}");
    let (big, small) = (&hours[0], &hours[1]);
    assert_eq!((big.count, big.value_count), (6, 6));
    assert_eq!((big.min, big.max), (Some(1e-200), Some(1.7e308)));
    assert_eq!(big.sum, f64::INFINITY);
    assert_eq!(big.stddev, None, "not computable once the sums overflowed");
    assert_eq!(small.value_count, 3);
    assert!((small.sum - 3.0).abs() < 1e-12, "{small:?}");
    // Values 0, 0, 3 (the squares of 1e-200 count as 0): variance 3.
    assert!(
        (small.stddev.unwrap() - 3f64.sqrt()).abs() < 1e-9,
        "{small:?}"
    );
    // Squares between PostgreSQL's bounds and f64's own (1e151² is a
    // finite double) saturate the same way in both stores.
    let other = DeviceId::new();
    let wide: Vec<Event> = [1e151, 1.0]
        .iter()
        .enumerate()
        .map(|(i, &v)| event(other, "t", base + i as i64, Some(v)))
        .collect();
    assert_eq!(store.store(&wide).await.expect("wide batch"), 2);
    let wide = two_hours(store, other, "t", base).await;
    assert_eq!((wide[0].sum, wide[0].stddev), (1e151, None), "{wide:?}");

    let query = EventQuery {
        device_id: device,
        from_ms: None,
        to_ms: None,
        types: vec![],
        limit: 100,
        cursor: None,
    };
    let page = store
        .events(&Scope::Platform, &query)
        .await
        .expect("events read");
    assert_eq!(page.events.len(), 9);
    let first = page
        .events
        .iter()
        .find(|e| e.event_id == events[0].event_id)
        .unwrap();
    assert_eq!(first.metadata, meta.as_object().cloned());
    assert_eq!(first.value, Some(1e200));
}

#[tokio::test]
async fn extreme_values_are_stored_and_rolled_up_in_memory() {
    extreme_values_are_stored_and_rolled_up(&hse_devices::writer::MemorySink::default()).await;
}

#[sqlx::test(migrations = false)]
async fn extreme_values_are_stored_and_rolled_up_on_postgres(pool: PgPool) {
    extreme_values_are_stored_and_rolled_up(&store(pool).await).await;
}

/// Writers storing batches at the same time (several writer processes)
/// share rollup buckets; they must never deadlock on them, and every
/// event must be counted once.
#[sqlx::test(migrations = false)]
async fn concurrent_writers_share_buckets_without_deadlocks(pool: PgPool) {
    let store = Arc::new(store(pool.clone()).await);
    let devices: Vec<DeviceId> = (0..60).map(|_| DeviceId::new()).collect();
    let base = now_hour();
    let deadlocks = || {
        count(
            &pool,
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
    };
    let before = deadlocks().await;
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (store, devices) = (store.clone(), devices.clone());
            tokio::spawn(async move {
                for round in 0..25u64 {
                    // A different subset and order of the shared devices
                    // each time, all in the same hour and day buckets.
                    let step = (w + round) % 7 + 1;
                    let batch: Vec<Event> = (0..devices.len() as u64)
                        .filter(|i| (i * step + w) % 3 != 0)
                        .map(|i| devices[((i * step + round) % devices.len() as u64) as usize])
                        .map(|d| event(d, "t", base + (round as i64), Some(1.0)))
                        .collect();
                    store.store(&batch).await.expect("stored");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    // pg_stat_database is updated when a backend reports its statistics.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&pool)
        .await
        .ok();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        deadlocks().await,
        before,
        "writers deadlocked on shared buckets"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT sum(event_count)::bigint FROM device_rollups_hourly"
        )
        .await,
        count(&pool, "SELECT count(*) FROM device_events").await
    );
}

#[sqlx::test(migrations = false)]
async fn events_are_read_newest_first_with_cursor_paging_and_type_filter(pool: PgPool) {
    let store = store(pool).await;
    let device = DeviceId::new();
    let base = now_hour();
    let mut events: Vec<_> = (0..25)
        .map(|i| event(device, "t", base + i, Some(1.0)))
        .collect();
    events.push(event(device, "alarm", base + 100, None));
    events.push(event(DeviceId::new(), "t", base, None));
    store.store(&events).await.unwrap();
    let mut query = EventQuery {
        device_id: device,
        from_ms: None,
        to_ms: None,
        types: vec![EventType::parse("t").unwrap()],
        limit: 10,
        cursor: None,
    };
    let mut seen = Vec::new();
    loop {
        let page = store.events(&Scope::Platform, &query).await.unwrap();
        seen.extend(page.events.iter().map(|e| e.ts_ms));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).rev().map(|i| base + i).collect::<Vec<_>>());
    let all = EventQuery {
        types: vec![],
        limit: 1,
        cursor: None,
        ..query
    };
    let newest = store.events(&Scope::Platform, &all).await.unwrap();
    assert_eq!(newest.events[0].event_type.as_str(), "alarm");
    assert_eq!(newest.events[0].metadata.as_ref().unwrap()["fw"], "1.2.3");
    let bad = EventQuery {
        cursor: Some("junk".into()),
        ..all
    };
    assert!(store.events(&Scope::Platform, &bad).await.is_err());
}

#[sqlx::test(migrations = false)]
async fn daily_partitions_are_created_on_demand_and_dropped_past_retention(pool: PgPool) {
    let store = store(pool.clone()).await;
    let old = Utc::now().timestamp_millis() - 800 * 24 * HOUR_MS;
    store
        .store(&[event(DeviceId::new(), "t", old, None)])
        .await
        .unwrap();
    store
        .maintain(Utc::now().date_naive(), 3, 730)
        .await
        .unwrap();
    let partitions = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'device_events'::regclass";
    assert!(count(&pool, partitions).await >= 5);
    assert_eq!(count(&pool, "SELECT count(*) FROM device_events").await, 0);
    assert!(!store.is_hypertable().await.unwrap());
    assert!(!store.set_timescale_policies(7, 730).await.unwrap());
}

#[sqlx::test(migrations = false)]
async fn content_errors_are_poison_and_connection_errors_transient(pool: PgPool) {
    let store = store(pool).await;
    let mut poison = event(DeviceId::new(), "t", now_hour(), None);
    poison.unit = Some("u".repeat(30));
    assert!(matches!(
        store.store(&[poison]).await,
        Err(SinkError::Content(_))
    ));
    let down = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/postgres")
        .unwrap();
    let err = sqlx::query("SELECT 1").execute(&down).await.unwrap_err();
    assert!(classify(&err).is_transient());
}

#[sqlx::test(migrations = false)]
async fn a_poison_event_is_dead_lettered_while_the_rest_of_its_batch_is_stored(pool: PgPool) {
    let store = Arc::new(store(pool.clone()).await);
    let device = DeviceId::new();
    let mut events: Vec<_> = (0..300)
        .map(|i| event(device, "t", now_hour() + i, Some(1.0)))
        .collect();
    events[211].unit = Some("u".repeat(30));
    let queue = hse_devices::queue::MemoryQueue::new(10_000, None);
    queue.enqueue(&events).await.unwrap();
    let dlq = Arc::new(MemoryDeadLetters::new());
    let config = WriterConfig {
        batch_wait: Duration::from_millis(5),
        ..WriterConfig::default()
    };
    let writer = BatchWriter::new(Arc::new(queue.consumer("w")), store, dlq.clone(), config);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run_until_stopped(stop.clone()));
    for _ in 0..500 {
        if count(&pool, "SELECT count(*) FROM device_events").await == 299
            && !dlq.list(false, 1).await.unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM device_events").await,
        299
    );
    let letters = dlq.list(false, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event.event_id, events[211].event_id);
    assert!(letters[0].reason.contains("23514"));
    assert_eq!(queue.backlog(), 0);
}

/// The zero-loss claim: while a producer enqueues, the batch writer is
/// killed (its task aborted mid-flight, connections dropped) at random
/// points and restarted; afterwards the stored ids are exactly the
/// acknowledged ids, the rollups count each once, and nothing is pending or
/// dead-lettered. Without acking after commit (or without idempotent
/// inserts) this loses or duplicates events.
#[sqlx::test(migrations = false)]
async fn a_writer_killed_repeatedly_loses_and_duplicates_nothing(pool: PgPool) {
    let store = Arc::new(store(pool.clone()).await);
    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("hse-test:{}:", uuid::Uuid::new_v4());
    let keys = Keys::new(&prefix);
    let conn = connect(&client, Duration::from_secs(5)).await.unwrap();
    let queue = Arc::new(RedisQueue::new(&client, keys.clone()).await.unwrap());
    let dlq = Arc::new(RedisDeadLetters::new(conn.clone(), keys.clone()));

    let producer = {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for round in 0..100 {
                let device = DeviceId::new();
                let batch: Vec<_> = (0..100)
                    .map(|i| event(device, "t", now_hour() + round * 100 + i, Some(i as f64)))
                    .collect();
                queue.enqueue(&batch).await.unwrap();
                acked.extend(batch.iter().map(|e| e.event_id));
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            acked
        })
    };
    let config = WriterConfig {
        batch_size: 250,
        batch_wait: Duration::from_millis(20),
        ..WriterConfig::default()
    };
    let spawn_writer = || async {
        let consumer = RedisConsumer::new(&client, keys.clone(), "writer-1")
            .await
            .unwrap();
        let writer = BatchWriter::new(
            Arc::new(consumer),
            store.clone(),
            dlq.clone(),
            config.clone(),
        );
        let stop = CancellationToken::new();
        (stop.clone(), tokio::spawn(writer.run_until_stopped(stop)))
    };
    for kill in 0..12u64 {
        let (_, task) = spawn_writer().await;
        tokio::time::sleep(Duration::from_millis(5 + (kill * 37) % 60)).await;
        task.abort();
        let _ = task.await;
    }
    let mut acked = producer.await.unwrap();
    let (stop, task) = spawn_writer().await;
    for _ in 0..1000 {
        if count(&pool, "SELECT count(*) FROM device_events").await == acked.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    task.await.unwrap();

    let mut stored: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM device_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    stored.sort();
    acked.sort();
    assert_eq!(stored.len(), 10_000);
    assert_eq!(stored, acked);
    assert_eq!(
        count(
            &pool,
            "SELECT sum(event_count)::bigint FROM device_rollups_hourly"
        )
        .await,
        10_000
    );
    assert_eq!(
        count(
            &pool,
            "SELECT sum(event_count)::bigint FROM device_rollups_daily"
        )
        .await,
        10_000
    );
    let mut c = conn.clone();
    let len: u64 = c.xlen(keys.events()).await.unwrap();
    assert_eq!(len, 0, "entries left in the stream");
    assert!(dlq.list(false, 10).await.unwrap().is_empty());
    assert!(dlq.list(true, 10).await.unwrap().is_empty());
    let leftovers: Vec<String> = c.keys(format!("{prefix}*")).await.unwrap();
    if !leftovers.is_empty() {
        let _: () = c.del(leftovers).await.unwrap();
    }
}

/// A TCP proxy in front of PostgreSQL that can be switched off: while off
/// it drops open connections and refuses new ones, as a stopped server does.
async fn switchable_proxy(target: std::net::SocketAddr) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (switch, _) = tokio::sync::watch::channel(true);
    let sender = switch.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let mut up = switch.subscribe();
            if !*up.borrow() {
                continue;
            }
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = up.wait_for(|on| !*on) => {}
                }
            });
        }
    });
    (port, sender)
}

/// PostgreSQL goes away under load (5 s here; `HSE_TEST_PG_OUTAGE_S=60` for
/// the full drill): the writer retries, nothing is dead-lettered or lost,
/// and the backlog drains once it is back.
#[sqlx::test(migrations = false)]
async fn a_database_outage_under_load_loses_nothing_and_dead_letters_nothing(pool: PgPool) {
    store(pool.clone()).await;
    let target = {
        let o = pool.connect_options();
        tokio::net::lookup_host((o.get_host(), o.get_port()))
            .await
            .unwrap()
            .next()
            .unwrap()
    };
    let (port, switch) = switchable_proxy(target).await;
    let options = (*pool.connect_options())
        .clone()
        .host("127.0.0.1")
        .port(port);
    let proxied = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(options);
    let sink = Arc::new(PgEventStore::new(proxied));

    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("hse-test:{}:", uuid::Uuid::new_v4());
    let keys = Keys::new(&prefix);
    let conn = connect(&client, Duration::from_secs(5)).await.unwrap();
    let queue = Arc::new(RedisQueue::new(&client, keys.clone()).await.unwrap());
    let dlq = Arc::new(RedisDeadLetters::new(conn.clone(), keys.clone()));
    let consumer = RedisConsumer::new(&client, keys.clone(), "writer-1")
        .await
        .unwrap();
    let config = WriterConfig {
        batch_size: 200,
        batch_wait: Duration::from_millis(20),
        backoff_max: Duration::from_millis(500),
        ..WriterConfig::default()
    };
    let writer = BatchWriter::new(Arc::new(consumer), sink, dlq.clone(), config);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run_until_stopped(stop.clone()));

    let outage = Duration::from_secs(
        std::env::var("HSE_TEST_PG_OUTAGE_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let mut acked = 0;
    let mut backlog_at_return = 0;
    let started = tokio::time::Instant::now();
    for round in 0..40 {
        if round == 5 {
            switch.send_replace(false);
        }
        if started.elapsed() > outage && !*switch.borrow() {
            backlog_at_return = acked - count(&pool, "SELECT count(*) FROM device_events").await;
            switch.send_replace(true);
        }
        let device = DeviceId::new();
        let batch: Vec<_> = (0..50)
            .map(|i| event(device, "t", now_hour() + round * 50 + i, Some(1.0)))
            .collect();
        queue.enqueue(&batch).await.unwrap();
        acked += batch.len() as i64;
        tokio::time::sleep(outage / 30).await;
    }
    switch.send_replace(true);
    for _ in 0..1500 {
        if count(&pool, "SELECT count(*) FROM device_events").await == acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert!(
        backlog_at_return > 500,
        "the outage held back only {backlog_at_return} events"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM device_events").await,
        acked
    );
    assert_eq!(
        count(
            &pool,
            "SELECT sum(event_count)::bigint FROM device_rollups_daily"
        )
        .await,
        acked
    );
    assert!(dlq.list(false, 10).await.unwrap().is_empty());
    assert!(dlq.list(true, 10).await.unwrap().is_empty());
    let mut c = conn.clone();
    let len: u64 = c.xlen(keys.events()).await.unwrap();
    assert_eq!(len, 0);
    let leftovers: Vec<String> = c.keys(format!("{prefix}*")).await.unwrap();
    if !leftovers.is_empty() {
        let _: () = c.del(leftovers).await.unwrap();
    }
}

/// Closed buckets come from the Redis cache; a late event into a closed
/// bucket (stored through the invalidating sink) makes the next read exact.
#[sqlx::test(migrations = false)]
async fn closed_buckets_are_cached_and_a_late_event_invalidates_them(pool: PgPool) {
    use hse_devices::cache::{CachedHistory, InvalidatingSink, RollupCache};

    let store = Arc::new(store(pool.clone()).await);
    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("hse-test:{}:", uuid::Uuid::new_v4());
    let keys = Keys::new(&prefix);
    let conn = connect(&client, Duration::from_secs(5)).await.unwrap();
    let cache = RollupCache::new(conn.clone(), &keys);
    let history = CachedHistory::new(store.clone(), cache.clone());
    let sink = InvalidatingSink::new(store.clone(), cache);

    let device = DeviceId::new();
    let kind = EventType::parse("t").unwrap();
    let past = now_hour() - 5 * HOUR_MS;
    let now = Utc::now().timestamp_millis();
    sink.store(&[
        event(device, "t", past, Some(1.0)),
        event(device, "t", now, Some(5.0)),
    ])
    .await
    .unwrap();
    let range = (past - HOUR_MS, now + HOUR_MS);
    let counts = || async {
        let series = history
            .aggregates(
                &Scope::Platform,
                device,
                &kind,
                Bucket::Hour,
                range.0,
                range.1,
            )
            .await
            .unwrap();
        series.iter().map(|a| a.count).collect::<Vec<_>>()
    };
    assert_eq!(counts().await, vec![1, 1]);

    store
        .store(&[event(device, "t", past + 1, Some(2.0))])
        .await
        .unwrap();
    assert_eq!(
        counts().await,
        vec![1, 1],
        "the closed bucket came from the cache"
    );

    sink.store(&[event(device, "t", past + 2, Some(3.0))])
        .await
        .unwrap();
    assert_eq!(counts().await, vec![3, 1]);
    assert_eq!(fresh_sum(&history, device, &kind, range).await, 11.0);

    let mut c = conn.clone();
    let leftovers: Vec<String> = c.keys(format!("{prefix}*")).await.unwrap();
    if !leftovers.is_empty() {
        let _: () = c.del(leftovers).await.unwrap();
    }
}

async fn fresh_sum(
    history: &dyn EventHistory,
    device: DeviceId,
    kind: &EventType,
    range: (i64, i64),
) -> f64 {
    let series = history
        .aggregates(
            &Scope::Platform,
            device,
            kind,
            Bucket::Hour,
            range.0,
            range.1,
        )
        .await
        .unwrap();
    series.iter().map(|a| a.sum).sum()
}

/// A device in a fresh organization (inserted by the owner), and the scope
/// of that organization's admin assigned to its establishment.
async fn placed_device(pool: &PgPool) -> (DeviceId, Scope) {
    use hse_core::model::{NewArea, NewDevice, NewEstablishment, NewOrganization};
    use hse_core::store::{AreaStore, DeviceStore, EstablishmentStore, OrganizationStore};
    use hse_core::value::Metadata;

    let tenancy = hse_core::postgres::PgTenancyStore::new(pool.clone());
    let now = Utc::now();
    let all = Scope::Platform;
    let org = NewOrganization {
        name: "Hotels SA".into(),
        ..Default::default()
    }
    .build(now)
    .unwrap();
    tenancy.insert_organization(&all, &org).await.unwrap();
    // As a client would send it (address, location and metadata default).
    let est: NewEstablishment = serde_json::from_value(serde_json::json!({
        "organization_id": org.id,
        "name": "Hotel Sol",
        "timezone": "Europe/Madrid",
    }))
    .unwrap();
    let est = est.build(now).unwrap();
    tenancy
        .insert_establishment(&all, &est, None)
        .await
        .unwrap();
    let area = NewArea {
        establishment_id: est.id,
        parent_area_id: None,
        name: "101".into(),
        kind: "room".into(),
        floor: None,
        metadata: Metadata::default(),
    }
    .build(now)
    .unwrap();
    tenancy.insert_area(&all, &area).await.unwrap();
    let device = NewDevice {
        area_id: area.id,
        device_type: "thermostat".into(),
        manufacturer: "Acme".into(),
        model: "T1".into(),
        serial_number: uuid::Uuid::new_v4().to_string(),
        mac_address: None,
        protocol: "hse-tcp".into(),
        metadata: Metadata::default(),
    }
    .build(est.id, now)
    .unwrap();
    let secret = hse_core::Secret::generate().unwrap();
    tenancy
        .insert_device(&all, &device, secret.hash())
        .await
        .unwrap();
    let scope = Scope::Organization {
        organization_id: org.id,
        establishments: [est.id].into(),
    };
    (device.id, scope)
}

/// Reads run inside the caller's scope: row-level security shows a tenant
/// its own devices' events and rollups and nothing of another's, even when
/// asked for the other device by id; the aggregate cache keys answers by
/// scope, so the platform's cached answer is not served to a tenant.
#[sqlx::test(migrations = false)]
async fn reads_see_only_the_devices_of_their_scope(pool: PgPool) {
    use hse_devices::cache::{CachedHistory, RollupCache};

    let store = Arc::new(store(pool.clone()).await);
    let (mine, my_scope) = placed_device(&pool).await;
    let (theirs, _) = placed_device(&pool).await;
    let past = now_hour() - 3 * HOUR_MS;
    let events: Vec<_> = [mine, theirs]
        .into_iter()
        .flat_map(|d| (0..3).map(move |i| event(d, "t", past + i * 60_000, Some(1.0))))
        .collect();
    assert_eq!(store.store(&events).await.unwrap(), 6);
    let query = |device_id| EventQuery {
        device_id,
        from_ms: None,
        to_ms: None,
        types: vec![],
        limit: 10,
        cursor: None,
    };
    let seen = |page: hse_devices::history::EventPage| page.events.len();
    let everyone = Scope::Platform;
    assert_eq!(
        seen(store.events(&my_scope, &query(mine)).await.unwrap()),
        3
    );
    assert_eq!(
        seen(store.events(&my_scope, &query(theirs)).await.unwrap()),
        0
    );
    assert_eq!(
        seen(store.events(&everyone, &query(theirs)).await.unwrap()),
        3
    );

    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("hse-test:{}:", uuid::Uuid::new_v4());
    let conn = connect(&client, Duration::from_secs(5)).await.unwrap();
    let history = CachedHistory::new(
        store.clone(),
        RollupCache::new(conn.clone(), &Keys::new(&prefix)),
    );
    let kind = EventType::parse("t").unwrap();
    let range = (past - HOUR_MS, past + HOUR_MS);
    let buckets = |scope: Scope, device| {
        let (history, kind) = (&history, &kind);
        async move {
            let series = history
                .aggregates(&scope, device, kind, Bucket::Hour, range.0, range.1)
                .await
                .unwrap();
            series.iter().map(|a| a.count).sum::<i64>()
        }
    };
    assert_eq!(
        buckets(everyone.clone(), theirs).await,
        3,
        "cached for the platform"
    );
    assert_eq!(
        buckets(my_scope.clone(), theirs).await,
        0,
        "not served to a tenant"
    );
    assert_eq!(buckets(my_scope.clone(), mine).await, 3);

    let mut c = conn.clone();
    let leftovers: Vec<String> = c.keys(format!("{prefix}*")).await.unwrap();
    if !leftovers.is_empty() {
        let _: () = c.del(leftovers).await.unwrap();
    }
}
