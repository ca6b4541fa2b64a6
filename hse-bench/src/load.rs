//! The open-model device load generator: frames leave at their scheduled
//! times whatever the acks do (constant arrival rate, never a closed loop),
//! and every latency is measured from the *intended* send time, so a stall
//! is charged to every frame it delayed (no coordinated omission).
//!
//! The devices live on a runtime and threads of their own, as an external
//! fleet would: their connections and answer-reading tasks never queue
//! behind the server's tasks in this process. Frames are written by one
//! pacing thread that sleeps with the operating system's timer (tens of
//! microseconds) rather than tokio's millisecond wheel, so the generator's
//! own lateness stays small and is reported beside the figures it is part
//! of.
//!
//! It reports what it sent, what was acknowledged and what PostgreSQL holds
//! afterwards, so no throughput is reported that was not persisted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::Histogram;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::pipeline::{Device, Pipeline};

/// One load.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadSpec {
    /// Offered events per second, all devices together.
    pub(crate) rate: f64,
    /// How long frames are offered.
    pub(crate) duration: Duration,
    /// Events per frame.
    pub(crate) per_frame: usize,
    /// Every this many frames one is followed into PostgreSQL (0: none).
    pub(crate) probe_every: u64,
    /// How long to wait for the last acks and rows.
    pub(crate) drain: Duration,
    /// Hold the batch writer back until every frame is answered (storage
    /// then runs alone; storage lag is not meaningful).
    pub(crate) defer_storage: bool,
}

/// What came of it. Times in microseconds.
#[derive(Debug)]
pub(crate) struct LoadResult {
    /// Events written.
    pub(crate) sent: u64,
    /// Events acknowledged.
    pub(crate) acked: u64,
    /// Events refused.
    pub(crate) nacked: u64,
    /// Refused events by `nack` code.
    pub(crate) nack_codes: BTreeMap<String, u64>,
    /// Events counted in PostgreSQL at the end.
    pub(crate) stored: u64,
    /// Ack latency per frame from its intended send time.
    pub(crate) ack: Histogram<u64>,
    /// How late the generator itself wrote frames.
    pub(crate) lateness: Histogram<u64>,
    /// Ack to row visible in PostgreSQL, for the probed frames.
    pub(crate) lag: Histogram<u64>,
    /// Acked events per second (first intended send to last ack).
    pub(crate) acked_rate: f64,
    /// Stored events per second (first intended send to all stored).
    pub(crate) stored_rate: f64,
}

/// A frame to follow into PostgreSQL.
#[derive(Debug)]
struct Probe {
    device: Uuid,
    event: Uuid,
    ts_ms: i64,
    acked_at: Instant,
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    t0: Instant,
    /// `t0` on the wall clock, Unix milliseconds.
    t0_unix_ms: i64,
    interval: Duration,
    devices: u64,
    per_frame: usize,
    probe_every: u64,
    base: u128,
    sent: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    last_ack_ns: AtomicU64,
    probes: Mutex<Vec<Probe>>,
    nack_codes: Mutex<BTreeMap<String, u64>>,
    hists: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Shared {
    fn intended(&self, k: u64) -> Instant {
        self.t0 + self.interval.mul_f64(k as f64)
    }

    /// The device time of frame `k`'s events: its intended send time, so
    /// a probe knows the whole primary key of the row it looks for.
    fn ts_ms(&self, k: u64) -> i64 {
        self.t0_unix_ms + i64::try_from(self.interval.mul_f64(k as f64).as_millis()).unwrap_or(0)
    }

    fn event_id(&self, k: u64, i: usize) -> Uuid {
        Uuid::from_u128(self.base ^ (u128::from(k) << 16 | i as u128))
    }
}

/// A histogram for microseconds up to an hour.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs `spec` against the listener at `addr` with `devices`, then waits
/// for PostgreSQL (on `pool`) to hold everything acknowledged.
pub(crate) async fn run(
    pipeline: &mut Pipeline,
    devices: &[Device],
    pool: &PgPool,
    spec: LoadSpec,
) -> anyhow::Result<LoadResult> {
    if spec.defer_storage {
        pipeline.pause_writer().await;
    }
    let creds: Vec<(Uuid, String)> = devices
        .iter()
        .map(|d| (d.id.as_uuid(), d.secret.expose().to_owned()))
        .collect();
    let (ready, connected) = tokio::sync::oneshot::channel();
    let addr = pipeline.addr;
    let generator = tokio::task::spawn_blocking(move || generate(addr, creds, spec, ready));
    let Ok(shared) = connected.await else {
        generator.await??;
        anyhow::bail!("the generator stopped before its devices connected");
    };
    let done = tokio_util::sync::CancellationToken::new();
    let poller = tokio::spawn(poll_lag(pool.clone(), shared.clone(), done.clone()));
    generator.await??;
    let deadline = shared.t0 + spec.duration + spec.drain;
    pipeline.resume_writer().await?;
    let acked = shared.acked.load(Ordering::Relaxed);
    while Instant::now() < deadline + spec.drain && !pipeline.drained().await? {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stored_in = shared.t0.elapsed();
    let stored = crate::pipeline::stored(pool).await?;
    done.cancel();
    let lag = poller.await??;
    let acked_in = Duration::from_nanos(shared.last_ack_ns.load(Ordering::Relaxed));
    let (ack, lateness) = std::mem::replace(
        &mut *shared.hists.lock().unwrap_or_else(PoisonError::into_inner),
        (histogram(), histogram()),
    );
    Ok(LoadResult {
        sent: shared.sent.load(Ordering::Relaxed),
        acked,
        nacked: shared.nacked.load(Ordering::Relaxed),
        nack_codes: std::mem::take(
            &mut *shared
                .nack_codes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ),
        stored,
        ack,
        lateness,
        lag,
        acked_rate: acked as f64 / acked_in.as_secs_f64().max(1e-9),
        stored_rate: stored as f64 / stored_in.as_secs_f64(),
    })
}

/// The device side of a load, on a runtime and threads of its own (as an
/// external fleet would be, so the server's tasks never delay a device's
/// reads): connects every device, hands the shared record to the caller
/// through `ready`, paces the frames and reads every answer.
fn generate(
    addr: SocketAddr,
    creds: Vec<(Uuid, String)>,
    spec: LoadSpec,
    ready: tokio::sync::oneshot::Sender<Arc<Shared>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut conns = Vec::with_capacity(creds.len());
        for (id, token) in &creds {
            conns.push(hello(addr, *id, token).await?);
        }
        let total_frames = (spec.rate * spec.duration.as_secs_f64() / spec.per_frame as f64) as u64;
        let shared = Arc::new(Shared::new(&spec, creds.len() as u64));
        if ready.send(shared.clone()).is_err() {
            anyhow::bail!("nobody waits for the load");
        }
        let (mut writers, mut receivers) = (Vec::new(), Vec::new());
        for (d, ((device, _), (read, write))) in creds.iter().zip(conns).enumerate() {
            let d = d as u64;
            let frames = (total_frames + shared.devices - 1 - d) / shared.devices;
            writers.push(write);
            receivers.push(tokio::spawn(receive(
                shared.clone(),
                d,
                *device,
                frames,
                read,
            )));
        }
        let pacer = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || pace(&shared, writers, total_frames))
        };
        let deadline = shared.t0 + spec.duration + spec.drain;
        for task in receivers {
            tokio::time::timeout_at(deadline.into(), task)
                .await
                .context("acks did not arrive in time")???;
        }
        // The sockets stayed open until every ack was in.
        drop(pacer.await??);
        Ok(())
    })
}

impl Shared {
    /// The record of a load of `spec` over `devices` connections, starting
    /// 50 ms from now.
    fn new(spec: &LoadSpec, devices: u64) -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        Self {
            t0: Instant::now() + Duration::from_millis(50),
            t0_unix_ms: unix_ms + 50,
            interval: Duration::from_secs_f64(spec.per_frame as f64 / spec.rate),
            devices,
            per_frame: spec.per_frame,
            probe_every: spec.probe_every,
            base: Uuid::new_v4().as_u128() & !0xFFFF_FFFF_FFFF_FFFF_FFFF,
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            last_ack_ns: AtomicU64::new(0),
            probes: Mutex::new(Vec::new()),
            nack_codes: Mutex::new(BTreeMap::new()),
            hists: Mutex::new((histogram(), histogram())),
        }
    }
}

/// A device connection: its acks to read, and a blocking handle on the
/// same socket for the pacing thread to write frames with.
type Conn = (Lines<BufReader<TcpStream>>, std::net::TcpStream);

async fn hello(addr: SocketAddr, device: Uuid, token: &str) -> anyhow::Result<Conn> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let hello = serde_json::json!({"type":"hello","device_id":device,"token":token,"protocol":1});
    stream.write_all(format!("{hello}\n").as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let mut welcome = String::new();
    reader.read_line(&mut welcome).await?;
    anyhow::ensure!(
        welcome.contains("welcome"),
        "device hello refused: {welcome}"
    );
    // Nothing follows the welcome until frames are sent, so the buffer is
    // empty and the socket can be shared: tokio reads, the pacer writes.
    let socket = reader.into_inner().into_std()?;
    let writer = socket.try_clone()?;
    Ok((BufReader::new(TcpStream::from_std(socket)?).lines(), writer))
}

/// Writes every frame at its scheduled time, in schedule order (frame `k`
/// belongs to device `k % devices`), on the calling (blocking) thread.
fn pace(
    shared: &Shared,
    mut writers: Vec<std::net::TcpStream>,
    total_frames: u64,
) -> anyhow::Result<Vec<std::net::TcpStream>> {
    let mut lateness = histogram();
    let mut line = String::with_capacity(shared.per_frame * 140 + 64);
    for k in 0..total_frames {
        let intended = shared.intended(k);
        let early = intended.saturating_duration_since(Instant::now());
        if !early.is_zero() {
            std::thread::sleep(early);
        }
        let (d, j) = (k % shared.devices, k / shared.devices);
        frame(shared, k, j + 1, &mut line)?;
        let writer = writers
            .get_mut(usize::try_from(d)?)
            .context("a device per connection")?;
        write_fully(writer, line.as_bytes())?;
        lateness.saturating_record(micros(intended.elapsed()));
        shared
            .sent
            .fetch_add(shared.per_frame as u64, Ordering::Relaxed);
    }
    shared
        .hists
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .1
        .add(&lateness)?;
    Ok(writers)
}

/// Frame `k` of the schedule, its device's `seq`-th, as one line.
fn frame(shared: &Shared, k: u64, seq: u64, line: &mut String) -> anyhow::Result<()> {
    let ts_ms = shared.ts_ms(k);
    line.clear();
    let _ = write!(line, r#"{{"type":"events","seq":{seq},"events":["#);
    for i in 0..shared.per_frame {
        if i > 0 {
            line.push(',');
        }
        let _ = write!(
            line,
            r#"{{"event_id":"{}","ts_ms":{ts_ms},"event_type":"temperature","value":{}.5,"unit":"C"}}"#,
            shared.event_id(k, i),
            k % 40
        );
    }
    line.push_str("]}\n");
    Ok(())
}

/// Writes all of `bytes` to a socket that tokio keeps non-blocking: a full
/// send buffer is waited out in 50 µs naps.
fn write_fully(socket: &mut std::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{ErrorKind, Write as _};
    while !bytes.is_empty() {
        match socket.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct Reply {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    upto: bool,
    #[serde(default)]
    code: String,
}

/// Reads device `d`'s acks, charging each frame from its intended time.
async fn receive(
    shared: Arc<Shared>,
    d: u64,
    device: Uuid,
    frames: u64,
    mut lines: Lines<BufReader<TcpStream>>,
) -> anyhow::Result<()> {
    let mut answered = vec![false; usize::try_from(frames)? + 1];
    let (mut count, mut low) = (0u64, 1u64);
    let mut ack = histogram();
    while count < frames {
        let line = lines
            .next_line()
            .await?
            .context("connection closed before every ack")?;
        let reply: Reply = serde_json::from_str(&line)?;
        let now = Instant::now();
        let (from, nack) = match reply.kind.as_str() {
            "ack" if reply.upto => (low, false),
            "ack" => (reply.seq, false),
            "nack" => (reply.seq, true),
            _ => continue,
        };
        for seq in from..=reply.seq.min(frames) {
            let slot = &mut answered[usize::try_from(seq)?];
            if std::mem::replace(slot, true) {
                continue;
            }
            count += 1;
            let k = (seq - 1) * shared.devices + d;
            if nack {
                *shared
                    .nack_codes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(reply.code.clone())
                    .or_default() += shared.per_frame as u64;
                shared
                    .nacked
                    .fetch_add(shared.per_frame as u64, Ordering::Relaxed);
                continue;
            }
            shared
                .acked
                .fetch_add(shared.per_frame as u64, Ordering::Relaxed);
            ack.saturating_record(micros(now.saturating_duration_since(shared.intended(k))));
            if shared.probe_every > 0 && k.is_multiple_of(shared.probe_every) {
                let probe = Probe {
                    device,
                    event: shared.event_id(k, 0),
                    ts_ms: shared.ts_ms(k),
                    acked_at: now,
                };
                shared
                    .probes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(probe);
            }
        }
        while low <= frames && answered[usize::try_from(low)?] {
            low += 1;
        }
        let ns = u64::try_from(now.duration_since(shared.t0).as_nanos()).unwrap_or(u64::MAX);
        shared.last_ack_ns.fetch_max(ns, Ordering::Relaxed);
    }
    shared
        .hists
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .0
        .add(&ack)?;
    Ok(())
}

/// How often probed frames are looked for in PostgreSQL: the storage lag
/// is known to this resolution (its target is 1 s). Every 2 ms, the
/// polling itself took enough of the two cores to make the generator
/// measurably late (its p99 lateness about 1 ms instead of 0.2 ms without
/// probes).
pub(crate) const LAG_POLL: Duration = Duration::from_millis(10);

/// Follows probed frames until their first event is visible in PostgreSQL.
async fn poll_lag(
    pool: PgPool,
    shared: Arc<Shared>,
    done: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Histogram<u64>> {
    let mut lag = histogram();
    let mut waiting: Vec<Probe> = Vec::new();
    // The table was truncated just before the load, so a plan made now
    // (and cached) sees it empty and scans it: every poll would then read
    // the whole, growing table, and that PostgreSQL work would land on the
    // box whose latency is being measured. So the probes use a connection
    // of their own that may only look rows up by index.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                let only_index = "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off";
                sqlx::Executor::execute(conn, only_index).await.map(drop)
            })
        })
        .connect_with((*pool.connect_options()).clone())
        .await?;
    loop {
        waiting.append(&mut shared.probes.lock().unwrap_or_else(PoisonError::into_inner));
        if waiting.is_empty() && done.is_cancelled() {
            return Ok(lag);
        }
        if !waiting.is_empty() {
            let devices: Vec<Uuid> = waiting.iter().map(|p| p.device).collect();
            let events: Vec<Uuid> = waiting.iter().map(|p| p.event).collect();
            let times: Vec<i64> = waiting.iter().map(|p| p.ts_ms).collect();
            let found: Vec<Uuid> = sqlx::query_scalar(
                "SELECT e.event_id FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[]) AS p(device_id, event_id, ms)
                 JOIN device_events e ON e.device_id = p.device_id AND e.event_id = p.event_id
                                     AND e.time = 'epoch'::timestamptz + p.ms * interval '1 millisecond'",
            )
            .bind(&devices)
            .bind(&events)
            .bind(&times)
            .fetch_all(&pool)
            .await?;
            let now = Instant::now();
            waiting.retain(|p| {
                let seen = found.contains(&p.event);
                if seen {
                    lag.saturating_record(micros(now - p.acked_at));
                }
                !seen
            });
            if done.is_cancelled() && !waiting.is_empty() {
                // Everything acked is stored by now (the caller checked).
                return Ok(lag);
            }
        }
        tokio::time::sleep(LAG_POLL).await;
    }
}
