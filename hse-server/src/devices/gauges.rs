//! Device gauges for `/metrics`, sampled every few seconds: what
//! hse-devices does not emit itself.
//!
//! | metric | meaning |
//! |---|---|
//! | `hse_devices_connected` | device sessions open on this node |
//! | `hse_devices_queue_backlog` | events enqueued, not yet stored (queue lag) |
//! | `hse_devices_dead_letters{state}` | dead letters `retrying` / `permanent` (capped at 1000) |
//! | `hse_devices_circuit_open` | 1 while a gRPC client's breaker is open |
//!
//! hse-devices itself counts `hse_devices_events_enqueued_total` (the
//! ingest rate), `hse_devices_events_stored_total`,
//! `hse_devices_events_refused_total{reason}`,
//! `hse_devices_dead_lettered_total` and the batch latency histogram
//! `hse_devices_batch_duration_seconds`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Devices;

/// How often the gauges are refreshed.
pub const EVERY: Duration = Duration::from_secs(5);
/// Dead letters counted at most per state.
const DEAD_LETTER_CAP: usize = 1000;

/// Describes the metrics and samples the gauges until `shutdown`.
pub async fn run_until_stopped(devices: Devices, shutdown: CancellationToken) {
    describe();
    // No breaker has opened in this process yet; the series starts closed.
    metrics::gauge!("hse_devices_circuit_open").set(0.0);
    loop {
        sample(&devices).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Refreshes the gauges once.
pub async fn sample(devices: &Devices) {
    metrics::gauge!("hse_devices_connected").set(devices.connections.len() as f64);
    metrics::gauge!("hse_devices_queue_backlog").set(devices.queue_length().await as f64);
    for (state, permanent) in [("retrying", false), ("permanent", true)] {
        match devices.dead_letters.list(permanent, DEAD_LETTER_CAP).await {
            Ok(letters) => {
                metrics::gauge!("hse_devices_dead_letters", "state" => state)
                    .set(letters.len() as f64);
            }
            Err(e) => tracing::debug!(error = %e, "dead letters not counted"),
        }
    }
}

fn describe() {
    metrics::describe_gauge!("hse_devices_connected", "Device sessions open on this node");
    metrics::describe_gauge!(
        "hse_devices_queue_backlog",
        "Events enqueued and not yet stored"
    );
    metrics::describe_gauge!(
        "hse_devices_dead_letters",
        "Dead letters by state (capped at 1000)"
    );
    metrics::describe_gauge!(
        "hse_devices_circuit_open",
        "1 while a devices gRPC client's circuit is open"
    );
    metrics::describe_counter!(
        "hse_devices_events_enqueued_total",
        "Events accepted from devices (ingest rate)"
    );
    metrics::describe_counter!("hse_devices_events_stored_total", "Events newly stored");
    metrics::describe_counter!(
        "hse_redis_resubscriptions_total",
        "Redis pub/sub channels subscribed again after the subscription was lost"
    );
    metrics::describe_counter!(
        "hse_devices_dead_lettered_total",
        "Events refused by storage"
    );
    metrics::describe_counter!(
        "hse_devices_code_uses_total",
        "Lock code uses recorded in booking"
    );
    metrics::describe_histogram!(
        "hse_devices_batch_duration_seconds",
        "Batch store-and-ack latency"
    );
}
