//! The device load: each device sends frames of events at a steady rate
//! over the device TCP protocol (`docs/PROTOCOL.md`), through its node's
//! devices proxy. Like real firmware it keeps every frame until it is
//! acknowledged: on a lost connection, a refused hello or a retryable
//! `nack` it reconnects and sends the same events again (same `event_id`,
//! same `ts_ms` if it sends one), so retries are idempotent. After a
//! retryable `nack` it holds back (at least the `retry_after_ms` the nack
//! carries; 250 ms, doubling to 5 s, reset by the next ack), as firmware
//! must: the first 30-minute run resent refused frames at once, and that
//! retry storm (35 000 Redis ops/s for 200 events/s offered) kept Redis
//! saturated and readiness down after a restart (SOAK.md). It records the
//! id of every acknowledged event for the exactly-once checker, and
//! answers lock commands with success.
//!
//! Some devices have no clock: their events carry an `event_id` but no
//! `ts_ms` (the server stamps its own time on arrival), and they resend
//! unacknowledged frames with the same `event_id`s like the others. Storage
//! must keep one row per `(device_id, event_id)` whatever time each attempt
//! was given (issue 14).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::tenants::DeviceLogin;

/// Events per frame.
const PER_FRAME: usize = 10;
/// Frames a device has in flight before it waits for acks.
const WINDOW: usize = 64;
/// Codes after which a frame is sent again (`outcome_unknown`: the events
/// may be stored already; the resend is deduplicated by `event_id`).
const RETRYABLE: [&str; 4] = [
    "overloaded",
    "unavailable",
    "outcome_unknown",
    "shutting_down",
];
/// The first hold-back after a retryable nack.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest hold-back.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Which of `devices` devices send `ts_ms` (`true`) and which have no
/// clock (`false`): one in three has none, chosen from `seed`, and at least
/// one of each when there are two devices or more.
pub(crate) fn clocks(seed: u64, devices: usize) -> Vec<bool> {
    let mut rng = crate::schedule::Rng::new(seed ^ 0x00C1_0C45_5EED);
    let mut timed: Vec<bool> = (0..devices).map(|_| rng.below(3) != 0).collect();
    if devices >= 2 {
        if timed.iter().all(|t| *t) {
            timed[rng.below(devices)] = false;
        }
        if timed.iter().all(|t| !*t) {
            timed[rng.below(devices)] = true;
        }
    }
    timed
}

/// What one device's run came to.
#[derive(Debug, Default)]
pub(crate) struct DeviceOutcome {
    /// Its id.
    pub(crate) device: Uuid,
    /// Whether its events carry `ts_ms` (false: a device without a clock).
    pub(crate) timed: bool,
    /// Events created.
    pub(crate) sent: u64,
    /// Every acknowledged event id (once each).
    pub(crate) acked: Vec<Uuid>,
    /// Events still unacknowledged when the run ended.
    pub(crate) unacked: u64,
    /// Frames sent again after a lost connection or a retryable nack.
    pub(crate) resent_frames: u64,
    /// Connections made (the first plus reconnections).
    pub(crate) connections: u64,
    /// Nacks by code (retryable ones included).
    pub(crate) nacks: BTreeMap<String, u64>,
    /// Commands answered.
    pub(crate) commands: u64,
}

/// One frame's events: ids and the device time they were taken at
/// (`None`: sent without `ts_ms`).
#[derive(Clone, Debug)]
struct Batch {
    events: Vec<Uuid>,
    ts_ms: Option<u64>,
    value: u64,
}

impl Batch {
    fn frame(&self, seq: u64) -> String {
        let mut line = String::with_capacity(PER_FRAME * 140 + 64);
        let _ = write!(line, r#"{{"type":"events","seq":{seq},"events":["#);
        for (i, id) in self.events.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, r#"{{"event_id":"{id}","#);
            if let Some(ts_ms) = self.ts_ms {
                let _ = write!(line, r#""ts_ms":{ts_ms},"#);
            }
            let _ = write!(
                line,
                r#""event_type":"temperature","value":{}.5,"unit":"C"}}"#,
                self.value % 40
            );
        }
        line.push_str("]}\n");
        line
    }
}

/// How a device behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Firmware {
    /// Frames per second.
    pub(crate) frames_per_s: f64,
    /// Whether events carry `ts_ms`.
    pub(crate) timed: bool,
}

/// Runs one device with `firmware` until `stop`, then keeps going until
/// everything it created is acknowledged or `drain` is cancelled.
pub(crate) async fn run_device(
    addr: SocketAddr,
    login: DeviceLogin,
    firmware: Firmware,
    stop: CancellationToken,
    drain: CancellationToken,
) -> DeviceOutcome {
    let device = Uuid::parse_str(&login.id).unwrap_or_default();
    let state = Arc::new(Mutex::new(State::default()));
    let producer = tokio::spawn(produce(state.clone(), firmware, stop.clone()));
    let mut outcome = DeviceOutcome {
        device,
        timed: firmware.timed,
        ..DeviceOutcome::default()
    };
    loop {
        let finished = stop.is_cancelled() && lock(&state).is_empty() && producer.is_finished();
        if finished || drain.is_cancelled() {
            break;
        }
        outcome.connections += 1;
        let link = Link {
            addr,
            login: &login,
            state: &state,
            stop: &stop,
            drain: &drain,
        };
        let session = session(&link, &mut outcome).await;
        if session.is_err() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(300)) => {}
                () = drain.cancelled() => {}
            }
        }
    }
    producer.abort();
    let state = lock(&state);
    outcome.sent = state.created;
    outcome.unacked = (state.queue.len() + state.in_flight.len()) as u64 * PER_FRAME as u64;
    outcome.acked.clone_from(&state.acked);
    outcome
}

/// Frames not yet acknowledged, and what was.
#[derive(Debug, Default)]
struct State {
    /// Waiting to be sent (new, or to send again).
    queue: VecDeque<Batch>,
    /// Sent on the current connection, by seq.
    in_flight: BTreeMap<u64, Batch>,
    acked: Vec<Uuid>,
    acked_set: HashSet<Uuid>,
    created: u64,
    /// No frame is sent before this (after a retryable nack).
    hold_until: Option<Instant>,
    /// The next hold-back.
    backoff: Duration,
}

impl State {
    fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// Holds sending back after a refusal, longer each time, and at least
    /// the `retry_after` the server asked for.
    fn back_off(&mut self, retry_after: Duration) {
        self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.hold_until = Some(Instant::now() + self.backoff.max(retry_after));
    }

    /// Whether a frame may be sent now.
    fn may_send(&self) -> bool {
        self.in_flight.len() < WINDOW && self.hold_until.is_none_or(|t| t <= Instant::now())
    }

    /// The connection is gone: everything in flight goes back to the front.
    fn requeue_in_flight(&mut self) -> u64 {
        let back = std::mem::take(&mut self.in_flight);
        let n = back.len() as u64;
        for (_, batch) in back.into_iter().rev() {
            self.queue.push_front(batch);
        }
        n
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates a frame's worth of events every interval until `stop`.
async fn produce(state: Arc<Mutex<State>>, firmware: Firmware, stop: CancellationToken) {
    let interval = Duration::from_secs_f64(1.0 / firmware.frames_per_s.max(0.01));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut value = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        value += 1;
        let batch = Batch {
            events: (0..PER_FRAME).map(|_| Uuid::new_v4()).collect(),
            ts_ms: firmware.timed.then_some(ts_ms),
            value,
        };
        let mut state = lock(&state);
        state.created += PER_FRAME as u64;
        state.queue.push_back(batch);
    }
}

/// What a device's connections share.
struct Link<'a> {
    addr: SocketAddr,
    login: &'a DeviceLogin,
    state: &'a Mutex<State>,
    stop: &'a CancellationToken,
    drain: &'a CancellationToken,
}

/// One connection: hello, then send queued frames and read answers until
/// the connection fails or there is nothing left to do; what was in
/// flight goes back to the queue.
async fn session(link: &Link<'_>, outcome: &mut DeviceOutcome) -> anyhow::Result<()> {
    let result = talk(link, outcome).await;
    outcome.resent_frames += lock(link.state).requeue_in_flight();
    result
}

async fn talk(link: &Link<'_>, outcome: &mut DeviceOutcome) -> anyhow::Result<()> {
    let Link {
        addr,
        login,
        state,
        stop,
        drain,
    } = *link;
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let hello =
        json!({"type": "hello", "device_id": login.id, "token": login.secret, "protocol": 1});
    write.write_all(format!("{hello}\n").as_bytes()).await?;
    let welcome = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await??
        .unwrap_or_default();
    anyhow::ensure!(welcome.contains("welcome"), "hello refused: {welcome}");
    let mut seq = 0u64;
    let mut last_answer = Instant::now();
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        let next = {
            let mut state = lock(state);
            if state.may_send() {
                state.queue.pop_front().map(|batch| {
                    seq += 1;
                    let line = batch.frame(seq);
                    state.in_flight.insert(seq, batch);
                    line
                })
            } else {
                None
            }
        };
        if let Some(line) = next {
            write.write_all(line.as_bytes()).await?;
            continue;
        }
        {
            let state = lock(state);
            if stop.is_cancelled() && state.is_empty() {
                return Ok(());
            }
            if !state.in_flight.is_empty() && last_answer.elapsed() > Duration::from_secs(15) {
                anyhow::bail!("no answer for 15 s");
            }
        }
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { anyhow::bail!("closed by the server") };
                last_answer = Instant::now();
                let reply: Value = serde_json::from_str(&line)?;
                answer(&reply, state, outcome, &mut write).await?;
            }
            _ = poll.tick() => {}
            () = drain.cancelled() => return Ok(()),
        }
    }
}

/// Handles one frame from the server.
async fn answer(
    reply: &Value,
    state: &Mutex<State>,
    outcome: &mut DeviceOutcome,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
) -> anyhow::Result<()> {
    let seq = reply["seq"].as_u64().unwrap_or(0);
    match reply["type"].as_str().unwrap_or_default() {
        "ack" => {
            let mut state = lock(state);
            let done: Vec<u64> = if reply["upto"].as_bool() == Some(true) {
                state.in_flight.range(..=seq).map(|(k, _)| *k).collect()
            } else {
                vec![seq]
            };
            if !done.is_empty() {
                state.backoff = Duration::ZERO;
            }
            for k in done {
                if let Some(batch) = state.in_flight.remove(&k) {
                    for id in batch.events {
                        if state.acked_set.insert(id) {
                            state.acked.push(id);
                        }
                    }
                }
            }
        }
        "nack" => {
            let code = reply["code"].as_str().unwrap_or("?").to_owned();
            *outcome.nacks.entry(code.clone()).or_default() += 1;
            let mut state = lock(state);
            if let Some(batch) = state.in_flight.remove(&seq)
                && RETRYABLE.contains(&code.as_str())
            {
                outcome.resent_frames += 1;
                state.queue.push_front(batch);
                let retry_after = reply["retry_after_ms"].as_u64().unwrap_or(0);
                state.back_off(Duration::from_millis(retry_after.min(60_000)));
            }
        }
        "command" => {
            outcome.commands += 1;
            let result = json!({"type": "command_result", "request_id": reply["request_id"], "success": true, "message": "ok"});
            write.write_all(format!("{result}\n").as_bytes()).await?;
        }
        "error" => anyhow::bail!("error frame: {reply}"),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_one_in_three_devices_has_no_clock_and_the_seed_decides() {
        assert_eq!(clocks(7, 10), clocks(7, 10));
        let timeless: usize = (0..300)
            .map(|seed| clocks(seed, 10).iter().filter(|t| !**t).count())
            .sum();
        assert!((800..1200).contains(&timeless), "{timeless} of 3000");
        for seed in 0..300 {
            let c = clocks(seed, 10);
            assert!(
                c.contains(&true) && c.contains(&false),
                "seed {seed}: {c:?}"
            );
        }
    }

    #[test]
    fn a_device_without_a_clock_sends_no_ts_ms() {
        let id = Uuid::nil();
        let timed = Batch {
            events: vec![id],
            ts_ms: Some(1_764_288_000_123),
            value: 3,
        };
        let frame: Value = serde_json::from_str(&timed.frame(1)).expect("json");
        assert_eq!(frame["events"][0]["ts_ms"], 1_764_288_000_123_u64);
        let timeless = Batch {
            ts_ms: None,
            ..timed
        };
        let frame: Value = serde_json::from_str(&timeless.frame(2)).expect("json");
        let event = &frame["events"][0];
        assert!(event.get("ts_ms").is_none(), "{event}");
        assert_eq!(event["event_id"], id.to_string());
        assert_eq!(event["unit"], "C");
    }
}
