//! The Redis adapters against a real Redis 7 (`HSE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), each test under its own random key prefix.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use hse_core::DeviceId;
use hse_devices::dlq::{DeadLetters, DlqPolicy, replay};
use hse_devices::queue::{EventQueue, QueueConsumer};
use hse_devices::redis::{Keys, RedisConsumer, RedisDeadLetters, RedisQueue, RedisState, connect};
use hse_devices::state::{Connection, StateStore};
use hse_devices::writer::{BatchWriter, MemorySink, WriterConfig};
use hse_devices::{Event, EventType};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

struct Prefix {
    client: redis::Client,
    keys: Keys,
    prefix: String,
}

impl Prefix {
    fn new() -> Self {
        let url =
            std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("hse-test:{}:", uuid::Uuid::new_v4());
        Self {
            client: redis::Client::open(url).unwrap(),
            keys: Keys::new(&prefix),
            prefix,
        }
    }

    async fn conn(&self) -> redis::aio::ConnectionManager {
        connect(&self.client, Duration::from_secs(5)).await.unwrap()
    }

    async fn queue(&self) -> RedisQueue {
        RedisQueue::new(&self.client, self.keys.clone())
            .await
            .unwrap()
    }

    async fn consumer(&self, name: &str) -> RedisConsumer {
        RedisConsumer::new(&self.client, self.keys.clone(), name)
            .await
            .unwrap()
    }

    async fn stream_len(&self) -> u64 {
        self.conn().await.xlen(self.keys.events()).await.unwrap()
    }

    async fn cleanup(self) {
        let mut conn = self.conn().await;
        let keys: Vec<String> = conn.keys(format!("{}*", self.prefix)).await.unwrap();
        if !keys.is_empty() {
            let _: () = conn.del(keys).await.unwrap();
        }
    }
}

fn event(device_id: DeviceId, kind: &str, ts_ms: i64) -> Event {
    Event {
        event_id: uuid::Uuid::now_v7(),
        device_id,
        ts_ms,
        event_type: EventType::parse(kind).unwrap(),
        value: Some(ts_ms as f64),
        unit: Some("C".into()),
        metadata: None,
        source: Some("tcp".into()),
    }
}

#[tokio::test]
async fn enqueued_events_are_delivered_acked_and_deleted() {
    let p = Prefix::new();
    let queue = p.queue().await;
    let device = DeviceId::new();
    let events: Vec<_> = (0..10).map(|i| event(device, "t", i)).collect();
    queue.enqueue(&events).await.unwrap();
    assert_eq!(queue.backlog(), 10);
    let consumer = p.consumer("w1").await;
    let got = consumer.read(100, Duration::from_millis(10)).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.event.clone()).collect::<Vec<_>>(),
        events
    );
    let ids: Vec<_> = got.iter().map(|d| d.id.clone()).collect();
    consumer.ack(&ids).await.unwrap();
    assert_eq!(p.stream_len().await, 0);
    p.cleanup().await;
}

/// The ack trims the stream, and the trim removes only what every writer
/// is done with: an entry another writer still holds, and an entry nobody
/// has read yet, survive acks of newer or older entries; reads come in
/// chunks of at most `READ_CHUNK`.
#[tokio::test]
async fn acks_trim_only_entries_no_writer_still_needs() {
    let p = Prefix::new();
    let queue = p.queue().await;
    let device = DeviceId::new();
    let ids =
        |got: &[hse_devices::queue::Delivery]| got.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    let first: Vec<_> = (0..600).map(|i| event(device, "t", i)).collect();
    queue.enqueue(&first).await.unwrap();
    let (a, b) = (p.consumer("a").await, p.consumer("b").await);
    let wait = Duration::from_millis(10);
    let held_by_a = a.read(1000, wait).await.unwrap();
    assert_eq!(held_by_a.len(), hse_devices::redis::READ_CHUNK);
    let read_by_b = b.read(1000, wait).await.unwrap();
    assert_eq!(read_by_b.len(), hse_devices::redis::READ_CHUNK);
    let unread: Vec<_> = (600..610).map(|i| event(device, "t", i)).collect();
    queue.enqueue(&unread).await.unwrap();

    // B's entries are newer than A's pending ones: acked, but not trimmed.
    b.ack(&ids(&read_by_b)).await.unwrap();
    assert_eq!(p.stream_len().await, 610);
    // A acks: everything up to the last delivered entry goes; the 100 of
    // the first enqueue nobody read and the 10 enqueued since remain.
    a.ack(&ids(&held_by_a)).await.unwrap();
    assert_eq!(p.stream_len().await, 110);
    let rest = b.read(1000, wait).await.unwrap();
    let rest_events: Vec<_> = rest.iter().map(|d| d.event.clone()).collect();
    assert_eq!(rest_events, [&first[500..], &unread[..]].concat());
    b.ack(&ids(&rest)).await.unwrap();
    assert_eq!(p.stream_len().await, 0);
    p.cleanup().await;
}

#[tokio::test]
async fn a_restarted_consumer_reads_its_own_pending_entries_first() {
    let p = Prefix::new();
    let queue = p.queue().await;
    let device = DeviceId::new();
    queue
        .enqueue(&[event(device, "t", 1), event(device, "t", 2)])
        .await
        .unwrap();
    let first = p.consumer("w1").await;
    assert_eq!(
        first
            .read(100, Duration::from_millis(10))
            .await
            .unwrap()
            .len(),
        2
    );
    drop(first);
    queue.enqueue(&[event(device, "t", 3)]).await.unwrap();
    let again = p.consumer("w1").await;
    let pending = again.read(100, Duration::from_millis(10)).await.unwrap();
    assert_eq!(
        pending.iter().map(|d| d.event.ts_ms).collect::<Vec<_>>(),
        vec![1, 2]
    );
    again
        .ack(&pending.iter().map(|d| d.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    let fresh = again.read(100, Duration::from_millis(10)).await.unwrap();
    assert_eq!(
        fresh.iter().map(|d| d.event.ts_ms).collect::<Vec<_>>(),
        vec![3]
    );
    p.cleanup().await;
}

#[tokio::test]
async fn another_consumer_reclaims_entries_of_a_dead_one() {
    let p = Prefix::new();
    let queue = p.queue().await;
    queue
        .enqueue(&[event(DeviceId::new(), "t", 1)])
        .await
        .unwrap();
    let dead = p.consumer("dead").await;
    assert_eq!(
        dead.read(10, Duration::from_millis(10))
            .await
            .unwrap()
            .len(),
        1
    );
    let alive = p.consumer("alive").await;
    assert!(
        alive
            .reclaim(Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    let claimed = alive.reclaim(Duration::from_millis(20), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    alive.ack(&[claimed[0].id.clone()]).await.unwrap();
    assert_eq!(p.stream_len().await, 0);
    p.cleanup().await;
}

#[tokio::test]
async fn the_enqueue_round_trip_updates_device_state() {
    let p = Prefix::new();
    let queue = p.queue().await;
    let state = RedisState::new(p.conn().await, p.keys.clone());
    let device = DeviceId::new();
    let conn = Connection {
        connected: true,
        protocol: "tcp".into(),
        remote_address: "127.0.0.1:9".into(),
    };
    state.set_connection(device, &conn, 5).await.unwrap();
    queue
        .enqueue(&[event(device, "temperature", 10), event(device, "alarm", 11)])
        .await
        .unwrap();
    let got = state.get(device).await.unwrap().unwrap();
    assert_eq!(got.connection, conn);
    assert_eq!(got.last_seen_ms, Some(11));
    assert_eq!(got.last_events["temperature"].value, Some(10.0));
    assert_eq!(got.last_event().map(|(k, _)| k), Some("alarm"));
    assert_eq!(got.status(), "online");
    assert!(state.get(DeviceId::new()).await.unwrap().is_none());

    let newer = Connection {
        connected: true,
        protocol: "tcp".into(),
        remote_address: "127.0.0.1:10".into(),
    };
    state.set_connection(device, &newer, 20).await.unwrap();
    let old_gone = Connection {
        connected: false,
        ..conn.clone()
    };
    state.set_connection(device, &old_gone, 21).await.unwrap();
    assert!(
        state
            .get(device)
            .await
            .unwrap()
            .unwrap()
            .connection
            .connected,
        "the older session end changes nothing"
    );
    let new_gone = Connection {
        connected: false,
        ..newer
    };
    state.set_connection(device, &new_gone, 22).await.unwrap();
    assert_eq!(
        state.get(device).await.unwrap().unwrap().status(),
        "offline"
    );
    p.cleanup().await;
}

#[tokio::test]
async fn a_poison_event_reaches_the_permanent_dead_letter_while_others_flow_and_replays_once() {
    let p = Prefix::new();
    let queue = p.queue().await;
    let sink = Arc::new(MemorySink::new());
    sink.poison(Some("poison"));
    let dlq = Arc::new(RedisDeadLetters::new(p.conn().await, p.keys.clone()));
    let config = WriterConfig {
        batch_size: 50,
        batch_wait: Duration::from_millis(5),
        dlq_interval: Duration::from_millis(5),
        dlq: DlqPolicy {
            base: Duration::from_millis(2),
            max_tries: 5,
        },
        ..WriterConfig::default()
    };
    let writer = BatchWriter::new(
        Arc::new(p.consumer("w").await),
        sink.clone(),
        dlq.clone(),
        config,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run_until_stopped(stop.clone()));
    let device = DeviceId::new();
    let mut events: Vec<_> = (0..200).map(|i| event(device, "t", i)).collect();
    events.insert(123, event(device, "poison", 1000));
    queue.enqueue(&events).await.unwrap();
    let mut permanent = Vec::new();
    for _ in 0..1000 {
        permanent = dlq.list(true, 10).await.unwrap();
        if !permanent.is_empty() && sink.stored().len() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert_eq!(sink.stored().len(), 200);
    assert_eq!(permanent.len(), 1);
    assert_eq!(permanent[0].tries, 5);
    assert!(dlq.list(false, 10).await.unwrap().is_empty());
    assert_eq!(p.stream_len().await, 0);

    sink.poison(None);
    assert!(replay(&*dlq, &*sink, &permanent[0].id).await.unwrap());
    assert!(!replay(&*dlq, &*sink, &permanent[0].id).await.unwrap());
    assert_eq!(sink.stored().len(), 201);
    assert!(dlq.list(true, 10).await.unwrap().is_empty());
    p.cleanup().await;
}

#[tokio::test]
async fn commands_reach_a_device_connected_to_another_node() {
    use hse_devices::bus::CommandBus;
    use hse_devices::codec::CommandResult;
    use hse_devices::commands::{Command, CommandError, CommandSender, Connections};

    let p = Prefix::new();
    let here = Arc::new(Connections::new());
    let there = Arc::new(Connections::new());
    let bus_here = CommandBus::start(&p.client, p.conn().await, &p.prefix, "node-a", here.clone())
        .await
        .unwrap();
    let _bus_there = CommandBus::start(
        &p.client,
        p.conn().await,
        &p.prefix,
        "node-b",
        there.clone(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let device = DeviceId::new();
    let mut registration = there.register(device);
    let answering = {
        let there = there.clone();
        tokio::spawn(async move {
            let command = registration.commands.recv().await.unwrap();
            let message = format!("done:{}", command.command_type);
            there.resolve(CommandResult {
                request_id: command.request_id,
                success: true,
                message,
            });
            registration
        })
    };
    let command = |kind: &str| Command {
        request_id: uuid::Uuid::now_v7(),
        command_type: kind.into(),
        params: Default::default(),
    };
    let result = bus_here
        .send(device, command("unlock"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (result.success, result.message.as_str()),
        (true, "done:unlock")
    );
    let _registration = answering.await.unwrap();

    let silent = bus_here
        .send(device, command("reboot"), Duration::from_millis(200))
        .await;
    assert_eq!(silent.unwrap_err(), CommandError::Timeout);

    let started = std::time::Instant::now();
    let nowhere = bus_here
        .send(DeviceId::new(), command("unlock"), Duration::from_secs(5))
        .await;
    assert_eq!(nowhere.unwrap_err(), CommandError::DeviceOffline);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "offline must fail fast"
    );
    p.cleanup().await;
}

#[tokio::test]
async fn a_newer_connection_on_another_node_replaces_the_older() {
    use hse_devices::bus::CommandBus;
    use hse_devices::commands::Connections;

    let p = Prefix::new();
    let here = Arc::new(Connections::new());
    let there = Arc::new(Connections::new());
    let _bus_here = CommandBus::start(&p.client, p.conn().await, &p.prefix, "node-a", here.clone())
        .await
        .unwrap();
    let _bus_there = CommandBus::start(
        &p.client,
        p.conn().await,
        &p.prefix,
        "node-b",
        there.clone(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let device = DeviceId::new();
    let old = there.register(device);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = here.register(device);
    tokio::time::timeout(Duration::from_secs(5), old.replaced.cancelled())
        .await
        .expect("older session replaced");
    assert!(!there.is_connected(device));
    assert!(!new.replaced.is_cancelled(), "the newer session stays");
    assert!(here.is_connected(device));
    p.cleanup().await;
}

#[tokio::test]
async fn every_node_sees_every_nodes_changes_under_the_same_cursors() {
    use hse_devices::feed::ChangeFeed;
    use hse_devices::ingest::Ingest;
    use hse_devices::redis::ChangeRelay;

    let p = Prefix::new();
    let stop = CancellationToken::new();
    let mut feeds = Vec::new();
    let mut ingests = Vec::new();
    for _ in 0..2 {
        let feed = ChangeFeed::new(1000);
        let relay = ChangeRelay::new(&p.client, p.keys.clone()).await.unwrap();
        tokio::spawn(relay.run_until_stopped(feed.clone(), stop.clone()));
        let queue = Arc::new(p.queue().await.with_change_stream(10_000));
        ingests.push(Ingest::new(queue, feed.clone(), 1_000_000).relayed());
        feeds.push(feed);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut on_b = feeds[1].subscribe(None);
    let mut on_a = feeds[0].subscribe(None);
    let device = DeviceId::new();
    ingests[0]
        .submit(&[event(device, "alarm", 1)])
        .await
        .unwrap();
    ingests[1]
        .submit(&[event(device, "alarm", 2)])
        .await
        .unwrap();
    let mut seen = Vec::new();
    for sub in [&mut on_a, &mut on_b] {
        let mut got = Vec::new();
        for _ in 0..2 {
            let change = tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            got.push((change.cursor, change.event.ts_ms));
        }
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "same changes, same cursors on both nodes");
    assert_eq!(
        seen[0].iter().map(|(_, ts)| *ts).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let resumed: Vec<_> = {
        let mut sub = feeds[1].subscribe(Some(seen[0][0].0));
        vec![sub.next().await.unwrap().unwrap().event.ts_ms]
    };
    assert_eq!(resumed, vec![2], "a cursor from node A resumes on node B");
    stop.cancel();
    p.cleanup().await;
}
