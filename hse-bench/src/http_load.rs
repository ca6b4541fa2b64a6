//! Concurrent keep-alive HTTP/1.1 clients, each on its own connection,
//! sending requests back to back for a fixed time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::load::histogram;

/// Builds request number `i` of client `c`.
pub(crate) type MakeRequest = Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>;

/// What the clients got. Latencies in microseconds.
#[derive(Debug)]
pub(crate) struct HttpResult {
    /// Answers by status code.
    pub(crate) by_status: BTreeMap<u16, u64>,
    /// Latency of every request.
    pub(crate) latency: Histogram<u64>,
    /// How long the clients ran.
    pub(crate) elapsed: Duration,
}

impl HttpResult {
    /// Answers with `status` per second.
    pub(crate) fn rps(&self, statuses: &[u16]) -> f64 {
        let n: u64 = statuses
            .iter()
            .map(|s| self.by_status.get(s).copied().unwrap_or(0))
            .sum();
        n as f64 / self.elapsed.as_secs_f64()
    }

    /// All answers per second.
    pub(crate) fn total_rps(&self) -> f64 {
        self.by_status.values().sum::<u64>() as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds.
    pub(crate) fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Runs `clients` clients against `addr` for `duration`.
pub(crate) async fn run(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<HttpResult> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(client(addr, c, deadline, make.clone())))
        .collect();
    let mut result = HttpResult {
        by_status: BTreeMap::new(),
        latency: histogram(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (statuses, latency) = task.await??;
        for (s, n) in statuses {
            *result.by_status.entry(s).or_default() += n;
        }
        result.latency.add(&latency)?;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

async fn client(
    addr: SocketAddr,
    c: usize,
    deadline: Instant,
    make: MakeRequest,
) -> anyhow::Result<(BTreeMap<u16, u64>, Histogram<u64>)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut statuses = BTreeMap::new();
    let mut latency = histogram();
    let mut i = 0;
    while Instant::now() < deadline {
        let request = make(c, i);
        i += 1;
        let at = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        latency.saturating_record(u64::try_from(at.elapsed().as_micros())?);
        *statuses.entry(status).or_default() += 1;
    }
    Ok((statuses, latency))
}
