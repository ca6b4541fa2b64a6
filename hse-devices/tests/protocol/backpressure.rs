//! Back-pressure that follows storage, on the in-process queue: a writer
//! held back to a fixed pace, a device that keeps every frame until acked.

use hse_devices::dlq::MemoryDeadLetters;
use hse_devices::ingest::Backpressure;
use hse_devices::queue::EventQueue;
use hse_devices::writer::{BatchWriter, MemorySink, WriterConfig};

use super::fleet::{SlowSink, max_lag_until, run_device};
use super::*;

/// Devices send 3,000 events as fast as they can (up to 4,000/s); the
/// writer stores 50 every 100 ms (500/s). Once the lag passes 300 ms they
/// are nacked `overloaded` with `retry_after_ms`, resend, and in the end
/// every acked event is stored; the lag stays near its bound, where
/// without back-pressure it grows to about 5 s (the control: `max_lag` of
/// an hour).
async fn held_back_writer(max_lag: Duration) -> (super::fleet::Seen, Duration, Vec<Event>) {
    let state = Arc::new(MemoryState::new());
    let queue = MemoryQueue::new(100_000, Some(state.clone()));
    let directory = Arc::new(MemoryDirectory::new());
    let stop = CancellationToken::new();
    let pressure = Backpressure {
        max_lag,
        refresh: Duration::from_millis(50),
        high_water: 1_000_000,
    };
    let ingest =
        Ingest::new(queue.clone(), ChangeFeed::new(10), 1_000_000).with_backpressure(pressure);
    let ctx = Arc::new(SessionContext {
        directory: directory.clone(),
        ingest,
        connections: Arc::new(Connections::new()),
        state,
        config: SessionConfig::default(),
        shutdown: stop.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hse_devices::tcp::run_until_stopped(listener, ctx, 100));
    let stored = Arc::new(MemorySink::new());
    let sink = Arc::new(SlowSink {
        inner: stored.clone(),
        per_batch: Duration::from_millis(100),
    });
    let config = WriterConfig {
        batch_size: 50,
        batch_wait: Duration::from_millis(5),
        concurrency: 1,
        ..WriterConfig::default()
    };
    let writer = BatchWriter::new(
        Arc::new(queue.consumer("w")),
        sink,
        Arc::new(MemoryDeadLetters::new()),
        config,
    );
    tokio::spawn(writer.run_until_stopped(stop.clone()));
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn(max_lag_until(
        {
            let queue = queue.clone();
            move || {
                let queue = queue.clone();
                async move { queue.storage_lag().await.unwrap().oldest_untaken }
            }
        },
        sampling.clone(),
    ));
    let (id, secret) = (DeviceId::new(), Secret::generate().unwrap());
    directory.register(id, secret.hash());
    let seen = run_device(
        addr,
        id.as_uuid(),
        secret.expose(),
        (75, 40),
        Duration::from_millis(10),
        Duration::from_secs(60),
    )
    .await;
    for _ in 0..600 {
        if stored.stored().len() >= seen.acked.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sampling.cancel();
    let max_lag = sampler.await.unwrap();
    stop.cancel();
    (seen, max_lag, stored.stored())
}

use hse_devices::Event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_held_back_gets_devices_overloaded_loses_nothing_acked_and_bounds_the_lag() {
    let (seen, max_lag, stored) = held_back_writer(Duration::from_millis(300)).await;
    let overloaded: Vec<_> = seen
        .nacks
        .iter()
        .filter(|n| n["code"] == "overloaded")
        .collect();
    assert!(!overloaded.is_empty(), "no overloaded nack");
    assert!(
        overloaded.iter().all(|n| n["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| (250..=10_000).contains(&ms))),
        "{overloaded:?}"
    );
    eprintln!("max lag {max_lag:?}, {} nacks", seen.nacks.len());
    assert_eq!(seen.acked.len(), 3000, "every frame acked in the end");
    let stored: std::collections::HashSet<_> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(stored, seen.acked, "acked = stored");
    assert!(
        max_lag < Duration::from_millis(2500),
        "lag reached {max_lag:?}"
    );
}
