//! Idempotency on `(device_id, event_id)` whatever the event's time: a
//! device retrying an event without `ts_ms` gets a new server time at each
//! attempt (and a device may resend one with another `ts_ms`); the event is
//! stored once and counted once in every rollup, in memory and on
//! PostgreSQL 15 (`DATABASE_URL`).
#![cfg(feature = "postgres")]

use chrono::Utc;
use hse_core::{DeviceId, Scope};
use hse_devices::history::{Bucket, EventHistory, EventQuery};
use hse_devices::postgres::{PgEventStore, migrate};
use hse_devices::writer::{EventSink, MemorySink};
use hse_devices::{Event, EventType};
use sqlx::PgPool;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn event(device_id: DeviceId, event_id: uuid::Uuid, ts_ms: i64) -> Event {
    Event {
        event_id,
        device_id,
        ts_ms,
        event_type: EventType::parse("temperature").unwrap(),
        value: Some(20.0),
        unit: Some("C".into()),
        metadata: None,
        source: Some("tcp".into()),
    }
}

/// The events of `device` and the counts of its hourly and daily rollups
/// over the last three days.
async fn stored<S: EventHistory>(store: &S, device: DeviceId) -> (usize, i64, i64) {
    let now = Utc::now().timestamp_millis();
    let query = EventQuery {
        device_id: device,
        from_ms: None,
        to_ms: None,
        types: Vec::new(),
        limit: 100,
        cursor: None,
    };
    let events = store.events(&Scope::Platform, &query).await.unwrap();
    let kind = EventType::parse("temperature").unwrap();
    let mut counts = [0, 0];
    for (slot, bucket) in [(0, Bucket::Hour), (1, Bucket::Day)] {
        let buckets = store
            .aggregates(
                &Scope::Platform,
                device,
                &kind,
                bucket,
                now - 3 * DAY_MS,
                now + DAY_MS,
            )
            .await
            .unwrap();
        counts[slot] = buckets.iter().map(|b| b.count).sum::<i64>();
    }
    (events.events.len(), counts[0], counts[1])
}

/// The same event twice with two server times (a retry without `ts_ms`,
/// one hour apart so even the hourly buckets differ), once more with
/// `ts_ms + 1`, and again inside a batch with a new event: one row, one
/// count in every rollup, and the new event stored.
async fn an_event_retried_with_another_time_is_stored_once<S: EventSink + EventHistory>(store: &S) {
    let device = DeviceId::new();
    let id = uuid::Uuid::now_v7();
    let first = Utc::now().timestamp_millis() - 2 * HOUR_MS;
    assert_eq!(store.store(&[event(device, id, first)]).await.unwrap(), 1);
    assert_eq!(
        store
            .store(&[event(device, id, first + HOUR_MS)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.store(&[event(device, id, first + 1)]).await.unwrap(),
        0
    );
    let other = event(device, uuid::Uuid::now_v7(), first + 5);
    let batch = [
        event(device, id, first + 2),
        other.clone(),
        event(device, other.event_id, first + 6),
    ];
    assert_eq!(store.store(&batch).await.unwrap(), 1);
    assert_eq!(stored(store, device).await, (2, 2, 2));
    let same_id_elsewhere = event(DeviceId::new(), id, first);
    assert_eq!(
        store.store(&[same_id_elsewhere]).await.unwrap(),
        1,
        "ids are per device"
    );
}

#[tokio::test]
async fn an_event_retried_with_another_time_is_stored_once_in_memory() {
    an_event_retried_with_another_time_is_stored_once(&MemorySink::new()).await;
}

async fn store(pool: &PgPool) -> PgEventStore {
    hse_core::postgres::migrate(pool).await.unwrap();
    migrate(pool).await.unwrap();
    PgEventStore::new(hse_core::postgres::app_pool(pool, 4).await.unwrap())
}

#[sqlx::test(migrations = false)]
async fn an_event_retried_with_another_time_is_stored_once_on_postgres(pool: PgPool) {
    an_event_retried_with_another_time_is_stored_once(&store(&pool).await).await;
}

#[sqlx::test(migrations = false)]
async fn the_ids_of_events_past_retention_are_forgotten_with_them(pool: PgPool) {
    let store = store(&pool).await;
    let device = DeviceId::new();
    let old = Utc::now().timestamp_millis() - 800 * DAY_MS;
    let recent = Utc::now().timestamp_millis() - HOUR_MS;
    let events = [
        event(device, uuid::Uuid::now_v7(), old),
        event(device, uuid::Uuid::now_v7(), recent),
    ];
    assert_eq!(store.store(&events).await.unwrap(), 2);
    store
        .maintain(Utc::now().date_naive(), 1, 730)
        .await
        .unwrap();
    let ids: i64 = sqlx::query_scalar("SELECT count(*) FROM device_event_ids")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ids, 1, "the old event's id went with its partition");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM device_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

/// The writer's cost: batches of 1000 new events (ten devices, times a
/// few milliseconds apart) stored as the application role, alternated
/// with batches redelivered whole. Prints the medians of five rounds; run
/// with `-- --ignored --nocapture`.
#[sqlx::test(migrations = false)]
#[ignore = "a measurement, not a check"]
async fn writer_cost(pool: PgPool) {
    let store = store(&pool).await;
    let devices: Vec<DeviceId> = (0..10).map(|_| DeviceId::new()).collect();
    let (batches, size) = (40, 1000);
    let mut base = Utc::now().timestamp_millis() - 6 * HOUR_MS;
    let mut batch = || {
        base += 1000;
        (0..size)
            .map(|i| {
                event(
                    devices[i % devices.len()],
                    uuid::Uuid::now_v7(),
                    base + i as i64,
                )
            })
            .collect::<Vec<_>>()
    };
    let (mut fresh, mut again) = (Vec::new(), Vec::new());
    for round in 0..6 {
        let made: Vec<Vec<Event>> = (0..batches).map(|_| batch()).collect();
        let started = std::time::Instant::now();
        for b in &made {
            store.store(b).await.unwrap();
        }
        let new_rate = (batches * size) as f64 / started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        for b in &made {
            store.store(b).await.unwrap();
        }
        let redelivered_rate = (batches * size) as f64 / started.elapsed().as_secs_f64();
        if round > 0 {
            fresh.push(new_rate);
            again.push(redelivered_rate);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "writer, {batches} batches of {size} per round, 5 rounds (median): new {:.0} events/s, redelivered {:.0} events/s",
        median(&mut fresh),
        median(&mut again)
    );
}
