//! The consumer group on a real Redis (`HSE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): a writer that died holding entries is found
//! by the next writer's janitor step at once (not after `claim_idle`), its
//! entries taken over, and its name removed from the group. And the
//! consumer groups of other modules (`groups`), on memory and on Redis.
#![cfg(feature = "redis")]

use std::time::Duration;

use hse_core::DeviceId;
use hse_devices::queue::{EventQueue, QueueConsumer};
use hse_devices::redis::{GROUP, Keys, RedisConsumer, RedisQueue, connect};
use hse_devices::{Event, EventType};
use redis::AsyncCommands;

#[path = "consumers/groups.rs"]
mod groups;

fn event(device_id: DeviceId) -> Event {
    Event {
        event_id: uuid::Uuid::now_v7(),
        device_id,
        ts_ms: chrono::Utc::now().timestamp_millis(),
        event_type: EventType::parse("temperature").unwrap(),
        value: Some(1.0),
        unit: None,
        metadata: None,
        source: None,
    }
}

#[tokio::test]
async fn a_dead_writers_entries_are_taken_over_promptly_and_its_name_removed() {
    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let prefix = format!("hse-test:{}:", uuid::Uuid::new_v4());
    let keys = Keys::new(&prefix);
    let conn = connect(&client, Duration::from_secs(5)).await.unwrap();
    let queue = RedisQueue::new(&client, keys.clone()).await.unwrap();
    let device = DeviceId::new();
    let events: Vec<Event> = (0..10).map(|_| event(device)).collect();
    queue.enqueue(&events).await.unwrap();

    let dead = RedisConsumer::new(&client, keys.clone(), "deploy-1")
        .await
        .unwrap();
    assert_eq!(
        dead.read(100, Duration::from_millis(100))
            .await
            .unwrap()
            .len(),
        10
    );
    drop(dead);
    let next = RedisConsumer::new(&client, keys.clone(), "deploy-2")
        .await
        .unwrap()
        .with_dead_after(Duration::from_millis(300));
    assert!(
        next.read(100, Duration::from_millis(10))
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Far below claim_idle: only the dead consumer's silence lets this in.
    let taken = next.reclaim(Duration::from_secs(120), 100).await.unwrap();
    let mut ids: Vec<_> = taken.iter().map(|d| d.event.event_id).collect();
    ids.sort();
    let mut sent: Vec<_> = events.iter().map(|e| e.event_id).collect();
    sent.sort();
    assert_eq!(ids, sent, "every entry of the dead writer, once");
    let delivered: Vec<_> = taken.iter().map(|d| d.id.clone()).collect();
    next.ack(&delivered).await.unwrap();

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        next.reclaim(Duration::from_secs(120), 100)
            .await
            .unwrap()
            .is_empty()
    );
    let mut c = conn.clone();
    let group: redis::streams::StreamInfoConsumersReply =
        c.xinfo_consumers(keys.events(), GROUP).await.unwrap();
    let names: Vec<_> = group.consumers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["deploy-2"], "the dead writer's name is gone");

    let left: Vec<String> = c.keys(format!("{prefix}*")).await.unwrap();
    let _: () = c.del(left).await.unwrap();
}
