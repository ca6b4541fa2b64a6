//! A small TCP proxy that can add latency and cut every connection: the
//! network faults of the soak, put between the server and PostgreSQL, the
//! server and Redis, and the devices and the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub(crate) struct Proxy {
    addr: SocketAddr,
    controls: Arc<Controls>,
    accept: tokio::task::JoinHandle<()>,
}

/// What the fault injector turns.
#[derive(Debug)]
struct Controls {
    upstream: SocketAddr,
    latency_ms: AtomicU64,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub(crate) async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let controls = Arc::new(Controls {
            upstream,
            latency_ms: AtomicU64::new(0),
            cuts: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept(listener, controls.clone()));
        Ok(Self {
            addr,
            controls,
            accept,
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Delays every chunk, both ways, by `latency` from now on (zero: none).
    pub(crate) fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.controls.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Closes every connection open now (new ones are accepted).
    pub(crate) fn cut(&self) {
        self.controls.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept(listener: TcpListener, controls: Arc<Controls>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(relay(client, controls.clone()));
    }
}

/// One connection: both directions until either side closes or a cut.
async fn relay(client: TcpStream, controls: Arc<Controls>) {
    let mut cuts = controls.cuts.subscribe();
    let Ok(server) = TcpStream::connect(controls.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pipe(client_read, server_write, &controls) => {}
        () = pipe(server_read, client_write, &controls) => {}
        _ = cuts.changed() => {}
    }
}

/// Copies `from` into `to`, each chunk held back by the latency in force
/// when it was read (a delay line: throughput is kept, only time shifts).
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, controls: &Controls) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let delay = Duration::from_millis(controls.latency_ms.load(Ordering::Relaxed));
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn forwards_delays_and_cuts() {
        let proxy = Proxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let fast = Instant::now();
        assert_eq!(round_trip(&mut s).await.unwrap(), b"ping");
        assert!(fast.elapsed() < Duration::from_millis(150));

        proxy.set_latency(Duration::from_millis(100));
        let slow = Instant::now();
        assert_eq!(round_trip(&mut s).await.unwrap(), b"ping");
        assert!(slow.elapsed() >= Duration::from_millis(200), "both ways");
        proxy.set_latency(Duration::ZERO);

        proxy.cut();
        assert!(round_trip(&mut s).await.is_err(), "the cut closed it");
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut again).await.unwrap(), b"ping");
    }
}
