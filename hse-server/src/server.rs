//! Assembles the router and runs it until a shutdown signal, then drains
//! in-flight requests within the configured deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::Context;
use std::sync::Arc;

use axum::Router;
use hse_auth::audit::{AuditConfig, usage_audit};
use hse_auth::rate_limit::Quota;
use hse_auth::token::SigningKey;
use hse_auth::{AuthConfig, AuthDeps, Authenticator, SystemClock, TenancyDirectory};
use hse_core::Tenancy;
use hse_devices::commands::Connections;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backends::Backends;
use crate::config::Config;
use crate::http;
use crate::state::{AppState, Services};
use crate::tls::Tls;

/// A bound, ready-to-run server.
///
/// Background components (device listeners, batch writer, workers) are
/// spawned at build time on [`Server::tasks`] and watch
/// [`Server::shutdown`]; stopping cancels it and waits for them to finish
/// (flushing what they hold) within the deadline.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown_timeout: Duration,
    limits: crate::connections::Limits,
    tls: Option<Tls>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    devices: crate::devices::Bound,
}

/// Builds the services over the connected backends.
///
/// # Errors
/// When the authentication settings are invalid.
///
/// The API-key usage audit writer runs on `tasks` and flushes when the
/// last clone of the returned state is dropped.
pub fn services(
    config: &Config,
    backends: Backends,
    tasks: &TaskTracker,
) -> anyhow::Result<AppState> {
    let key = match &config.jwt_seed {
        Some(seed) => SigningKey::ed25519_from_seed(&seed.0),
        None => {
            tracing::warn!(
                "no HSE_JWT_SIGNING_KEY: tokens are signed with a key made for this run only"
            );
            SigningKey::generate_ed25519()?
        }
    };
    let mut auth_config = AuthConfig::new(key, &config.public_url, AUDIENCE);
    auth_config.principal_ttl =
        chrono::Duration::from_std(config.principal_cache).unwrap_or(chrono::Duration::zero());
    let deps = AuthDeps {
        directory: Arc::new(TenancyDirectory::new(backends.tenancy.clone())),
        store: backends.auth_store.clone(),
        limiter: backends.limiter.clone(),
        failures: backends.failures.clone(),
        clock: Arc::new(SystemClock),
    };
    let (recorder, writer) = usage_audit(backends.auth_store.clone(), AuditConfig::default());
    tasks.spawn(writer.run());
    let tenancy = Tenancy::new(backends.tenancy.clone()).with_placement_cache(
        chrono::Duration::from_std(config.placement_cache).unwrap_or(chrono::Duration::zero()),
    );
    let auth = Authenticator::build(deps, auth_config)?
        .with_denylist(backends.denylist.clone())
        .with_usage_audit(recorder)
        .with_tenancy_revision(tenancy.revision());
    let bookings = crate::bookings::service(config, &backends);
    let connections = Arc::new(Connections::new());
    let devices =
        crate::devices::Devices::embedded(config, &backends, connections.clone(), bookings.clone());
    Ok(AppState::new(Services {
        tenancy,
        auth: Arc::new(auth),
        user_quota: Quota::new(USER_BURST, USER_INTERVAL),
        bookings,
        connections,
        devices,
        backends,
    }))
}

/// Requests a signed-in user may burst before being paced.
const USER_BURST: NonZeroU32 = NonZeroU32::new(200).expect("200 is not zero");
/// Then one request per this interval (50 per second).
const USER_INTERVAL: Duration = Duration::from_millis(20);

/// The `aud` of HSE access tokens.
pub const AUDIENCE: &str = "hse-api";

/// Connects the backends and binds the listener.
///
/// # Errors
/// When a backend is unreachable or the address cannot be bound.
pub async fn build(config: &Config) -> anyhow::Result<Server> {
    let backends = Backends::connect(config).await?;
    let tasks = TaskTracker::new();
    let mut state = services(config, backends, &tasks)?;
    state.services_mut().devices = crate::devices::Devices::connect(
        config,
        &state.backends,
        state.connections.clone(),
        state.bookings.clone(),
    )
    .await?;
    let listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("HSE_HTTP_ADDR: cannot listen on {}", config.http_addr))?;
    let shutdown = CancellationToken::new();
    if config.roles.workers {
        crate::bookings::spawn_workers(config, &state, &tasks, &shutdown);
    }
    let tls = config.tls.as_ref().map(Tls::new).transpose()?;
    if let Some(tls) = &tls {
        tracing::info!(
            tls.cert = %tls.certificates().files().cert.display(),
            tls.fingerprint = %crate::tls::fingerprint(&tls.certificates().current()),
            "TLS on the HTTP, gRPC and device TCP listeners"
        );
        tasks.spawn(crate::tls::reload::run_until_stopped(
            tls.certificates().clone(),
            crate::tls::reload::POLL_EVERY,
            shutdown.clone(),
        ));
    } else {
        tasks.spawn(crate::tls::reload::ignore_hangups_until_stopped(
            shutdown.clone(),
        ));
    }
    let devices = crate::devices::start(config, &state, tls.as_ref(), &tasks, &shutdown).await?;
    let router = http::router(state.clone(), config);
    Ok(Server {
        listener,
        router,
        state,
        shutdown_timeout: config.shutdown_timeout,
        limits: config.connections,
        tls,
        tasks,
        shutdown,
        devices,
    })
}

impl Server {
    /// The services, for start-up tasks such as bootstrapping root.
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The bound address (useful with port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound device TCP address (`ingest` role; useful with port 0).
    #[must_use]
    pub fn device_tcp_addr(&self) -> Option<SocketAddr> {
        self.devices.device_tcp
    }

    /// The bound gRPC address (`grpc` role; useful with port 0).
    #[must_use]
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.devices.grpc
    }

    /// Where background components spawn their tasks.
    #[must_use]
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Cancelled when the server starts shutting down.
    #[must_use]
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Serves until `stop` completes, then stops accepting, lets in-flight
    /// requests and background tasks finish, for at most the deadline.
    /// Connections are bounded as [`crate::connections`] says.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(http.addr = %addr, "listening on {scheme}://{addr}");
        let token = self.shutdown.clone();
        let signalled = token.clone();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutdown requested: draining");
            signalled.cancel();
        });
        let serve = crate::connections::serve_http(
            self.listener,
            self.router,
            self.limits,
            self.tls.as_ref().map(Tls::http),
            token.clone(),
        );
        let tasks = self.tasks.clone();
        // Background writers flush when the last handle to the services is
        // gone: the router's copies go when serving ends, this one now.
        drop(self.state);
        let everything = async move {
            serve.await;
            tasks.close();
            tasks.wait().await;
        };
        let deadline = async {
            token.cancelled().await;
            tokio::time::sleep(self.shutdown_timeout).await;
        };
        tokio::select! {
            () = everything => {}
            () = deadline => tracing::warn!("shutdown deadline passed with work still in flight"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
