//! The server nodes: one or more full `hse-server` processes (every role)
//! on the same PostgreSQL and Redis, each with its own HTTP, gRPC and
//! device ports, its own `HSE_NODE_NAME` and its own device proxy, and the
//! shared `HSE_JWT_SIGNING_KEY` and `HSE_PUBLIC_URL`, so a token one node
//! issues is accepted by the other. Node A starts first (it runs the
//! migrations and creates the root account); the others follow once it is
//! ready.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::http::Api;
use crate::proxy::Proxy;
use crate::schedule::node_name;
use crate::services::free_port;
use crate::supervisor::Supervised;
use crate::tenants;

/// Longest an API call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A fixed token-signing seed, so access tokens survive server restarts
/// and are valid on every node.
const JWT_SEED: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
/// How long a node gets to become ready at start.
const START_BOUND: Duration = Duration::from_secs(120);

/// One supervised server node.
#[derive(Debug)]
pub(crate) struct Node {
    /// `A`, `B`, …
    pub(crate) name: char,
    /// The process.
    pub(crate) server: Supervised,
    /// Its HTTP API.
    pub(crate) api: Api,
    /// The proxy its devices connect through.
    pub(crate) device_proxy: Proxy,
}

/// Where every node finds the stores.
pub(crate) struct Stores {
    /// The application role's URL.
    pub(crate) database_url: String,
    /// The schema owner's URL (`HSE_DATABASE_MIGRATION_URL`).
    pub(crate) owner_url: String,
    /// Redis.
    pub(crate) redis_url: String,
}

/// Starts `count` nodes of `program`, logging into `dir`.
pub(crate) async fn start(
    program: &Path,
    count: usize,
    stores: &Stores,
    dir: &Path,
) -> anyhow::Result<Vec<Node>> {
    let ports: Vec<(u16, u16, u16)> = (0..count)
        .map(|_| Ok((free_port()?, free_port()?, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let public_url = format!("http://127.0.0.1:{}", ports.first().map_or(0, |p| p.0));
    let mut nodes = Vec::with_capacity(count);
    for (i, &(http, grpc, devices)) in ports.iter().enumerate() {
        let device_tcp = SocketAddr::from(([127, 0, 0, 1], devices));
        let env = vec![
            env("HSE_HTTP_ADDR", format!("127.0.0.1:{http}")),
            env("HSE_GRPC_ADDR", format!("127.0.0.1:{grpc}")),
            env("HSE_DEVICE_TCP_ADDR", device_tcp.to_string()),
            env("HSE_DATABASE_URL", stores.database_url.clone()),
            env("HSE_DATABASE_MIGRATION_URL", stores.owner_url.clone()),
            env("HSE_REDIS_URL", stores.redis_url.clone()),
            env("HSE_REDIS_DURABILITY", "require".into()),
            env(
                "HSE_NODE_NAME",
                process_name(i).replace("server", "soak-server"),
            ),
            env("HSE_JWT_SIGNING_KEY", JWT_SEED.into()),
            env("HSE_PUBLIC_URL", public_url.clone()),
            env("HSE_ROOT_EMAIL", tenants::ROOT.into()),
            env("HSE_ROOT_PASSWORD", tenants::ROOT_PASSWORD.into()),
            env("HSE_SHUTDOWN_TIMEOUT_S", "5".into()),
            // Not one line per request (`hse_server::http::trace`).
            env(
                "RUST_LOG",
                "warn,hse_server=info,hse_server::http::trace=warn".into(),
            ),
        ];
        let server = Supervised::start(process_name(i), program.to_owned(), Vec::new(), env, dir);
        let api = Api::new(&format!("http://127.0.0.1:{http}")).with_timeout(CALL_TIMEOUT);
        let node = Node {
            name: node_name(i),
            server,
            api,
            device_proxy: Proxy::start(device_tcp).await?,
        };
        wait_ready(&node.api, START_BOUND)
            .await
            .with_context(|| format!("server node {} did not become ready", node.name))?;
        nodes.push(node);
    }
    Ok(nodes)
}

/// The supervisor's name (and log file) of node `i`: `server` for A (as
/// in one-node runs), `server-b`, … for the others.
fn process_name(i: usize) -> &'static str {
    const NAMES: [&str; 4] = ["server", "server-b", "server-c", "server-d"];
    NAMES[i.min(NAMES.len() - 1)]
}

/// A `(name, value)` pair of the environment.
pub(crate) fn env(name: &str, value: String) -> (String, String) {
    (name.to_owned(), value)
}

/// Waits until readiness answers 200; the time it took.
pub(crate) async fn wait_ready(api: &Api, bound: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < bound {
        let ready = tokio::time::timeout(Duration::from_secs(3), api.get("/health/readiness"));
        if matches!(ready.await, Ok(Ok(_))) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("not ready within {bound:?}")
}

/// Waits until every node answers ready; the time until the last did.
pub(crate) async fn wait_all_ready(nodes: &[Node], bound: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for node in nodes {
        let left = bound.saturating_sub(started.elapsed());
        wait_ready(&node.api, left)
            .await
            .with_context(|| format!("node {}", node.name))?;
    }
    Ok(started.elapsed())
}
