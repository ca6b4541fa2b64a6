//! SIGTERM under device load: door locks stream thousands of events per
//! second into the real binary on PostgreSQL and Redis, it gets a real
//! SIGTERM, and once it has been started again on the same database, Redis
//! and node name, every event it acknowledged is stored exactly once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::io::{AsyncWriteExt, BufReader, Lines};
use uuid::Uuid;

use crate::binary::{self, ROOT, ROOT_PASSWORD};
use crate::line_device::{DeviceRead, LineDevice, register_locks};
use crate::services;

/// Locks streaming at once.
const LOCKS: usize = 4;
/// Events per frame.
const PER_FRAME: usize = 20;
/// How long the load runs before SIGTERM.
const LOAD: Duration = Duration::from_secs(2);
/// A lock stops sending after this long even if the server never closes.
const GIVE_UP: Duration = Duration::from_secs(30);

/// What one lock streamed.
struct Streamed {
    /// Events sent.
    sent: usize,
    /// Ids of the events in frames the server acknowledged.
    acked: Vec<Uuid>,
    /// Frames the server refused (nack).
    nacked: usize,
}

/// Streams frames as fast as the server takes them, without waiting for
/// answers, until the server closes the connection.
async fn stream_until_closed(addr: SocketAddr, lock: String, secret: String) -> Streamed {
    let LineDevice { lines, mut out } = LineDevice::connect(addr, &lock, &secret)
        .await
        .expect("the lock is welcomed");
    let answers = tokio::spawn(answered(lines));
    let started = Instant::now();
    let mut frames: Vec<Vec<Uuid>> = Vec::new();
    while started.elapsed() < GIVE_UP {
        let ids: Vec<Uuid> = (0..PER_FRAME).map(|_| Uuid::now_v7()).collect();
        let ts_ms = chrono::Utc::now().timestamp_millis();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| json!({"event_id": id, "event_type": "load", "value": 1, "ts_ms": ts_ms}))
            .collect();
        let frame = json!({"type": "events", "seq": frames.len() + 1, "events": events});
        if out
            .write_all(format!("{frame}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        frames.push(ids);
    }
    drop(out);
    let (acked_seqs, nacked) = answers.await.expect("the reader ends");
    let acked = acked_seqs
        .into_iter()
        .filter_map(|seq| frames.get(usize::try_from(seq).ok()? - 1))
        .flatten()
        .copied()
        .collect();
    Streamed {
        sent: frames.len() * PER_FRAME,
        acked,
        nacked,
    }
}

/// The seqs the server acknowledged (an ack with `upto` covers every frame
/// since the previous answer) and the number of nacks, until it closes.
async fn answered(mut lines: Lines<BufReader<DeviceRead>>) -> (Vec<u64>, usize) {
    let (mut acked, mut nacked, mut answered_upto) = (Vec::new(), 0, 0);
    while let Ok(Some(line)) = lines.next_line().await {
        let answer: Value = serde_json::from_str(&line).expect("JSON frames");
        let Some(seq) = answer["seq"].as_u64() else {
            continue; // not an answer to a frame (e.g. a goodbye)
        };
        match answer["type"].as_str() {
            Some("ack") if answer["upto"] == true => acked.extend(answered_upto + 1..=seq),
            Some("ack") => acked.push(seq),
            Some("nack") => nacked += 1,
            _ => continue,
        }
        answered_upto = seq;
    }
    (acked, nacked)
}

/// How many of `ids` PostgreSQL holds: rows, and distinct event ids.
async fn stored(pool: &PgPool, ids: &[Uuid]) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT event_id) FROM device_events WHERE event_id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .expect("device_events is readable")
}

#[sqlx::test(migrations = false)]
async fn sigterm_under_load_then_restart_stores_every_acknowledged_event_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut env = services::env(&options).await;
    env.push(("HSE_ROOT_PASSWORD", ROOT_PASSWORD.to_owned()));
    let server = binary::start(env.iter().map(|(k, v)| (*k, v)));
    let root = server.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let locks = register_locks(&root, LOCKS).await.unwrap();
    let addr = server.device_tcp.expect("ingest role");
    let streams: Vec<_> = locks
        .into_iter()
        .map(|(lock, secret)| tokio::spawn(stream_until_closed(addr, lock, secret)))
        .collect();
    let load = Instant::now();
    tokio::time::sleep(LOAD).await;
    let loaded = load.elapsed();
    let signalled = Instant::now();
    let exit = server.terminate(Duration::from_secs(20)).await;
    let drained = signalled.elapsed();
    assert!(exit.success(), "{exit}");
    let (mut acked, mut sent, mut nacked) = (Vec::new(), 0, 0);
    for stream in streams {
        let stream = stream.await.expect("the lock task ends");
        acked.extend(stream.acked);
        sent += stream.sent;
        nacked += stream.nacked;
    }
    let offered = sent as f64 / loaded.as_secs_f64();
    let rate = acked.len() as f64 / loaded.as_secs_f64();
    eprintln!(
        "{LOCKS} locks over {loaded:.1?}: {sent} events sent (~{offered:.0}/s), {} acknowledged \
         (~{rate:.0}/s), {nacked} frames nacked; exited {drained:.1?} after SIGTERM",
        acked.len()
    );
    assert!(
        offered >= 1000.0 && acked.len() >= 1000,
        "thousands of events per second offered, at least a thousand acknowledged"
    );

    // The next start of the same node stores what the stream still holds.
    let restarted = binary::start(env.iter().map(|(k, v)| (*k, v)));
    let pool = PgPoolOptions::new()
        // As the owner: the application role sees nothing unscoped.
        .connect(services::value(&env, "HSE_DATABASE_MIGRATION_URL"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (rows, distinct) = loop {
        let (rows, distinct) = stored(&pool, &acked).await;
        if rows as usize >= acked.len() || Instant::now() > deadline {
            break (rows, distinct);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(distinct as usize, acked.len(), "acknowledged events lost");
    assert_eq!(rows, distinct, "acknowledged events stored twice");
    assert!(restarted.terminate(Duration::from_secs(20)).await.success());
    services::forget_redis(&env).await;
}
