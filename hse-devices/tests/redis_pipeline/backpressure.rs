//! Back-pressure and acknowledgements on the Redis queue: a writer held
//! back, and Redis answers delayed past the old 500 ms client timeout and
//! past the enqueue timeout, through a proxy that delays every reply.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hse_core::Secret;
use hse_devices::commands::Connections;
use hse_devices::directory::MemoryDirectory;
use hse_devices::feed::ChangeFeed;
use hse_devices::ingest::{Backpressure, Ingest};
use hse_devices::session::{SessionConfig, SessionContext};
use hse_devices::state::MemoryState;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::fleet::held_back_run;
use super::*;

/// A device listener over `queue`, with `max_lag`; its directory.
async fn listener(queue: Arc<RedisQueue>, max_lag: Duration) -> (SocketAddr, Arc<MemoryDirectory>) {
    let directory = Arc::new(MemoryDirectory::new());
    let pressure = Backpressure {
        max_lag,
        refresh: Duration::from_millis(50),
        high_water: 1_000_000,
    };
    let ctx = Arc::new(SessionContext {
        directory: directory.clone(),
        ingest: Ingest::new(queue, ChangeFeed::new(10), 1_000_000).with_backpressure(pressure),
        connections: Arc::new(Connections::new()),
        state: Arc::new(MemoryState::new()),
        config: SessionConfig::default(),
        shutdown: CancellationToken::new(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hse_devices::tcp::run_until_stopped(listener, ctx, 100));
    (addr, directory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_held_back_on_redis_gets_devices_overloaded_and_loses_nothing_acked() {
    let p = Prefix::new();
    let queue = Arc::new(p.queue().await);
    let (addr, directory) = listener(queue.clone(), Duration::from_millis(300)).await;
    let consumer = Arc::new(p.consumer("w").await);
    let dlq = Arc::new(RedisDeadLetters::new(p.conn().await, p.keys.clone()));
    let (seen, max_lag, stored) = held_back_run(addr, &directory, queue, consumer, dlq).await;
    let overloaded: Vec<_> = seen
        .nacks
        .iter()
        .filter(|n| n["code"] == "overloaded")
        .collect();
    assert!(!overloaded.is_empty(), "no overloaded nack");
    assert!(
        overloaded
            .iter()
            .all(|n| n["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 250)),
        "{overloaded:?}"
    );
    assert_eq!(seen.acked.len(), 3000);
    let stored: std::collections::HashSet<_> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(stored, seen.acked, "acked = stored");
    assert!(
        max_lag < Duration::from_millis(2500),
        "lag reached {max_lag:?}"
    );
    p.cleanup().await;
}

/// Forwards to `upstream`, delivering every reply `delay` after Redis sent
/// it (in order; the delay does not add up), until dropped.
struct DelayProxy {
    addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl DelayProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (delay, halt) = (delay_ms.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = halt.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { return };
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::spawn(relay(client, server, delay.clone(), halt.clone()));
            }
        });
        Self {
            addr,
            delay_ms,
            stop,
        }
    }

    fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    delay: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let requests = async {
        tokio::io::copy(&mut client_read, &mut server_write)
            .await
            .ok()
    };
    let replies_in = async {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buf).await {
            let due =
                tokio::time::Instant::now() + Duration::from_millis(delay.load(Ordering::Relaxed));
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let replies_out = async {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if client_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = stop.cancelled() => {}
        _ = requests => {}
        () = replies_in => {}
        () = replies_out => {}
    }
}

/// One connected device: sends a frame, reads the answer.
struct OneDevice {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl OneDevice {
    async fn connect(addr: SocketAddr, directory: &MemoryDirectory) -> Self {
        let (id, secret) = (DeviceId::new(), Secret::generate().unwrap());
        directory.register(id, secret.hash());
        let (r, write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut device = Self {
            lines: BufReader::new(r).lines(),
            write,
        };
        let hello = json!({"type":"hello","device_id":id,"token":secret.expose(),"protocol":1});
        assert_eq!(device.ask(&hello).await["type"], "welcome");
        device
    }

    async fn ask(&mut self, frame: &Value) -> Value {
        self.write
            .write_all(format!("{frame}\n").as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("no answer within 20 s")
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

fn frame(seq: u64, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"event_id":uuid::Uuid::now_v7(),"event_type":"t","value":i}))
        .collect();
    json!({"type":"events","seq":seq,"events":events})
}

/// The `XADD`s succeed and their answer comes 1.2 s later: past the 500 ms
/// the shared client used to wait (the device was nacked `unavailable` and
/// resent events already stored), within the enqueue timeout (2 s here):
/// an ack. Past the enqueue timeout the device is told `outcome_unknown`
/// (never `unavailable`), and the events are indeed in the stream. With
/// Redis unreachable, `unavailable` with `retry_after_ms`.
#[tokio::test]
async fn an_answer_delayed_past_the_client_timeout_is_an_ack_and_an_unknown_outcome_says_so() {
    let p = Prefix::new();
    let upstream: SocketAddr = p
        .client
        .get_connection_info()
        .addr()
        .to_string()
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:6379".parse().unwrap());
    let proxy = DelayProxy::start(upstream).await;
    let via_proxy = redis::Client::open(format!("redis://{}", proxy.addr)).unwrap();
    let queue = RedisQueue::new(&via_proxy, p.keys.clone())
        .await
        .unwrap()
        .with_enqueue_timeout(Duration::from_secs(2));
    let (addr, directory) = listener(Arc::new(queue), Duration::from_secs(5)).await;
    let mut device = OneDevice::connect(addr, &directory).await;

    proxy.delay(Duration::from_millis(1200));
    assert_eq!(
        device.ask(&frame(1, 10)).await,
        json!({"type":"ack","seq":1})
    );
    assert_eq!(p.stream_len().await, 10);

    proxy.delay(Duration::from_millis(3500));
    let nack = device.ask(&frame(2, 10)).await;
    assert_eq!(
        (
            nack["type"].as_str(),
            nack["seq"].as_u64(),
            nack["code"].as_str()
        ),
        (Some("nack"), Some(2), Some("outcome_unknown")),
        "{nack}"
    );
    assert!(nack["retry_after_ms"].as_u64().is_some(), "{nack}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        p.stream_len().await,
        20,
        "the unknown outcome was a success"
    );

    proxy.delay(Duration::ZERO);
    drop(proxy);
    let mut codes = Vec::new();
    for seq in 3..=4 {
        let nack = device.ask(&frame(seq, 1)).await;
        assert_eq!(nack["type"], "nack", "{nack}");
        assert!(nack["retry_after_ms"].as_u64().is_some(), "{nack}");
        codes.push(nack["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        codes.last().map(String::as_str),
        Some("unavailable"),
        "{codes:?}"
    );
    assert_eq!(p.stream_len().await, 20);
    p.cleanup().await;
}
