//! Dead letters in Redis (`HSE_REDIS_URL`, default `redis://127.0.0.1:6379`)
//! with several writers: each unstorable event is one letter, retried by
//! every writer at once until permanent, and redelivered to a second
//! writer that dead-letters it again.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hse_core::DeviceId;
use hse_devices::dlq::{DeadLetters, DlqPolicy, retry_due};
use hse_devices::redis::{Keys, RedisDeadLetters, connect};
use hse_devices::writer::EventSink;
use hse_devices::{Event, EventType, SinkError};
use redis::AsyncCommands;

/// A database that refuses every event for its content.
#[derive(Debug)]
struct Refusing;

#[async_trait]
impl EventSink for Refusing {
    async fn store(&self, _: &[Event]) -> Result<u64, SinkError> {
        tokio::task::yield_now().await;
        Err(SinkError::Content("SQLSTATE 22021".into()))
    }
}

fn unstorable() -> Event {
    Event {
        event_id: uuid::Uuid::now_v7(),
        device_id: DeviceId::new(),
        ts_ms: chrono::Utc::now().timestamp_millis(),
        event_type: EventType::parse("temperature").unwrap(),
        value: Some(1.0),
        unit: Some("C".into()),
        metadata: None,
        source: Some("tcp".into()),
    }
}

#[tokio::test]
async fn one_letter_per_event_whatever_the_number_of_writers() {
    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("hse-test:{}:", uuid::Uuid::new_v4());
    let keys = Keys::new(&prefix);
    let mut writers = Vec::new();
    for _ in 0..3 {
        let conn = connect(&client, Duration::from_secs(5)).await.unwrap();
        writers.push(Arc::new(RedisDeadLetters::new(conn, keys.clone())));
    }
    let events: Vec<Event> = (0..10).map(|_| unstorable()).collect();
    for event in &events {
        // Dead-lettered by its writer, then redelivered to two others.
        for writer in &writers {
            writer.add(event, "SQLSTATE 22021", 0).await.unwrap();
        }
    }
    let policy = DlqPolicy {
        base: Duration::ZERO,
        max_tries: 5,
    };
    for _ in 0..8 {
        let rounds = writers.iter().map(|w| {
            let w = Arc::clone(w);
            tokio::spawn(async move {
                let now = chrono::Utc::now().timestamp_millis();
                retry_due(&*w, &Refusing, &policy, now).await.unwrap()
            })
        });
        for round in rounds.collect::<Vec<_>>() {
            assert_eq!(round.await.unwrap(), 0);
        }
    }
    let permanent = writers[0].list(true, 10_000).await.unwrap();
    let retrying = writers[0].list(false, 10_000).await.unwrap();
    assert_eq!(
        (permanent.len(), retrying.len()),
        (10, 0),
        "one permanent letter per event"
    );
    let mut ids: Vec<_> = permanent.iter().map(|l| l.event.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    assert!(
        permanent.iter().all(|l| l.tries == policy.max_tries),
        "{permanent:?}"
    );

    let mut conn = connect(&client, Duration::from_secs(5)).await.unwrap();
    let left: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    let _: () = conn.del(left).await.unwrap();
}
