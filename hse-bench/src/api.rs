//! The HTTP API in process (`hse_server` services and router on a fresh
//! database), and the authenticated-read figure: `GET /v1/devices/{id}/status`
//! (or `GET /v1/devices/{id}` while the status route has not landed) with
//! 64 clients, against `/health/liveness` on the same server.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::env::{Env, Scratch};
use crate::http_load::{self, MakeRequest};
use crate::report::{Figure, Report};

const ROOT: &str = "root@bench.example";
const PASSWORD: &str = "a benchmark root passphrase";

/// A running API server and a signed-in root.
#[derive(Debug)]
pub(crate) struct ApiServer {
    /// HTTP address.
    pub(crate) addr: SocketAddr,
    /// Root's access token.
    pub(crate) token: String,
    stop: CancellationToken,
    tasks: TaskTracker,
    scratch: Scratch,
    redis_url: String,
    prefix: String,
}

impl ApiServer {
    /// Builds the services on a fresh database, with the per-user quota
    /// lifted (its Redis check still runs on every request), and signs in.
    pub(crate) async fn start(env: &Env, report: &mut Report) -> anyhow::Result<Self> {
        Self::start_with(env, report, &[]).await
    }

    /// [`ApiServer::start`] with some settings given (`HSE_…` name, value).
    pub(crate) async fn start_with(
        env: &Env,
        report: &mut Report,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let scratch = env.scratch().await?;
        hse_core::postgres::ensure_app_login_role(&scratch.pool).await?;
        let prefix = Env::redis_prefix();
        let lookup = |name: &str| match name {
            "HSE_DATABASE_URL" => Some(hse_core::postgres::app_role_url(&scratch.url)),
            "HSE_DATABASE_MIGRATION_URL" => Some(scratch.url.clone()),
            "HSE_REDIS_URL" => Some(env.redis_url.clone()),
            "HSE_REDIS_PREFIX" => Some(prefix.clone()),
            "HSE_HTTP_ADDR" | "HSE_GRPC_ADDR" | "HSE_DEVICE_TCP_ADDR" => Some("127.0.0.1:0".into()),
            other => settings
                .iter()
                .find(|(name, _)| *name == other)
                .map(|(_, value)| (*value).to_owned()),
        };
        let config = hse_server::Config::from_lookup(lookup)?;
        let backends = hse_server::backends::Backends::connect(&config).await?;
        let tasks = TaskTracker::new();
        let mut state = hse_server::server::services(&config, backends, &tasks)?;
        state.services_mut().user_quota = hse_auth_quota();
        hse_server::bootstrap::bootstrap_root(&state, ROOT, Some(PASSWORD.into())).await?;
        let router = hse_server::http::router(state, &config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tasks.spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        report.note("api: the per-user request quota is lifted for the benchmark (its Redis check still runs on every request)");
        let mut server = Self {
            addr,
            token: String::new(),
            stop,
            tasks,
            scratch,
            redis_url: env.redis_url.clone(),
            prefix,
        };
        let login = server
            .call(
                "POST",
                "/v1/auth/login",
                Some(json!({"email": ROOT, "password": PASSWORD})),
            )
            .await?;
        server.token = login.1["access_token"]
            .as_str()
            .context("login gave no token")?
            .to_owned();
        Ok(server)
    }

    /// One authenticated call on a fresh connection: status and JSON body.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let request = request(method, path, &self.token, body.map(|b| b.to_string()));
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Creates what is needed and returns its id; fails on a non-201.
    pub(crate) async fn create(&self, path: &str, body: Value) -> anyhow::Result<String> {
        let (status, answer) = self.call("POST", path, Some(body)).await?;
        anyhow::ensure!(status == 201, "POST {path}: {status} {answer}");
        Ok(answer["id"].as_str().context("no id")?.to_owned())
    }

    /// An organization and an establishment in it: `(organization, establishment)`.
    pub(crate) async fn establishment(&self) -> anyhow::Result<(String, String)> {
        let org = self
            .create("/v1/organizations", json!({"name": "Bench Org"}))
            .await?;
        let est = self
            .create(
                "/v1/establishments",
                json!({"organization_id": org, "name": "Bench Hotel", "timezone": "Europe/Madrid"}),
            )
            .await?;
        Ok((org, est))
    }

    /// Stops serving, drops the database and the keys.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await;
        self.scratch.drop_now().await?;
        crate::env::delete_prefix(&self.redis_url, &self.prefix).await
    }
}

fn hse_auth_quota() -> hse_auth::rate_limit::Quota {
    hse_auth::rate_limit::Quota::new(NonZeroU32::MAX, Duration::from_nanos(1))
}

/// A request with the bearer token and an optional JSON body.
pub(crate) fn request(
    method: &str,
    path: &str,
    token: &str,
    body: Option<String>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench");
    if !token.is_empty() {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(b) => {
            builder = builder.header("content-type", "application/json");
            Full::new(Bytes::from(b))
        }
        None => Full::new(Bytes::new()),
    };
    builder.body(body).unwrap_or_default()
}

/// A server with one device; the path of its status read.
async fn with_device(
    env: &Env,
    report: &mut Report,
    settings: &[(&str, &str)],
) -> anyhow::Result<(ApiServer, String)> {
    let server = ApiServer::start_with(env, report, settings).await?;
    let (_, est) = server.establishment().await?;
    let area = server
        .create(
            "/v1/areas",
            json!({"establishment_id": est, "name": "Room 1", "type": "room"}),
        )
        .await?;
    let device = server
        .create(
            "/v1/devices",
            json!({"area_id": area, "device_type": "sensor", "protocol": "hse-tcp"}),
        )
        .await?;
    let path = format!("/v1/devices/{device}/status");
    let (status, body) = server.call("GET", &path, None).await?;
    anyhow::ensure!(status == 200, "GET {path} answered {status}: {body}");
    Ok((server, path))
}

/// The caches of the authorization path turned off.
const UNCACHED: [(&str, &str); 2] = [
    ("HSE_PRINCIPAL_CACHE_MS", "0"),
    ("HSE_PLACEMENT_CACHE_MS", "0"),
];

/// Runs the section: status reads on the default settings (principal and
/// placement cached for 1 s), then with both caches off, each beside
/// liveness on the same server.
pub(crate) async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let (clients, duration) = (64, Duration::from_secs(if env.smoke { 1 } else { 10 }));
    let (server, path) = with_device(env, report, &[]).await?;
    let live = http_load::run(
        server.addr,
        clients,
        duration,
        get("/health/liveness".into(), String::new()),
    )
    .await?;
    let read = http_load::run(
        server.addr,
        clients,
        duration,
        get(path.clone(), server.token.clone()),
    )
    .await?;
    report.note(format!(
        "api: the status read answers {:?}; liveness answers {:?}",
        read.by_status, live.by_status
    ));
    let rps = Figure::new(
        "api",
        "authenticated GET /v1/devices/{id}/status, 64 clients",
        read.rps(&[200]),
        "req/s",
        "GET /health/liveness",
        live.rps(&[200]),
    );
    let met = rps.value >= 20_000.0;
    report.add(rps.target("≥ 20000/s", met));
    let p99 = Figure::new(
        "api",
        "authenticated read p99, 64 clients",
        read.ms(0.99),
        "ms",
        "liveness p99",
        live.ms(0.99),
    );
    let met = p99.value <= 10.0;
    report.add(p99.target("≤ 10 ms", met));
    server.stop().await?;

    let (server, path) = with_device(env, report, &UNCACHED).await?;
    let cold = http_load::run(
        server.addr,
        clients,
        duration,
        get(path, server.token.clone()),
    )
    .await?;
    report.note(format!(
        "api: with caches off the status read answers {:?}",
        cold.by_status
    ));
    report.add(Figure::new(
        "api",
        "same read, principal and placement caches off (every request reads PostgreSQL)",
        cold.rps(&[200]),
        "req/s",
        "cached, same run",
        read.rps(&[200]),
    ));
    report.add(Figure::new(
        "api",
        "same read p99, caches off",
        cold.ms(0.99),
        "ms",
        "cached p99",
        read.ms(0.99),
    ));
    server.stop().await
}

/// GET `path` again and again.
pub(crate) fn get(path: String, token: String) -> MakeRequest {
    Arc::new(move |_, _| request("GET", &path, &token, None))
}
