//! Back-pressure that follows storage, on the in-process queue: a writer
//! held back to a fixed pace, a device that keeps every frame until acked.

use hse_devices::dlq::MemoryDeadLetters;
use hse_devices::ingest::Backpressure;

use super::fleet::held_back_run;
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
    let run = held_back_run(
        addr,
        &directory,
        queue.clone(),
        Arc::new(queue.consumer("w")),
        Arc::new(MemoryDeadLetters::new()),
    )
    .await;
    stop.cancel();
    run
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
