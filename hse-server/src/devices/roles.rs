//! What each role runs: the device TCP listener, the batch writer and the
//! shutdown order between them (`ingest`), the gRPC server (`grpc`,
//! [`super::grpc`]), partition maintenance (`workers`), and the device
//! gauges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hse_devices::redis::ChangeRelay;
use hse_devices::writer::WriterConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Devices, gauges};
use crate::config::Config;
use crate::state::AppState;
use crate::tls::{MaybeTls, Tls};

/// Device connections served at once per node.
const MAX_DEVICE_CONNECTIONS: usize = 20_000;
/// How often partitions are created ahead and expired ones dropped.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);
/// Daily partitions created ahead of today.
const PARTITIONS_AHEAD_DAYS: i64 = 7;
/// Raw events are kept this long (two years).
const RETENTION_DAYS: i64 = 730;

/// Where the device listeners of a started server are bound.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bound {
    /// The device TCP listener (`ingest` role).
    pub device_tcp: Option<SocketAddr>,
    /// The gRPC server (`grpc` role).
    pub grpc: Option<SocketAddr>,
}

/// Binds the listeners of the configured roles and spawns them, the batch
/// writer and the workers on `tasks`; all stop when `shutdown` is
/// cancelled, ingest in the order that loses nothing.
///
/// # Errors
/// When an address cannot be bound.
pub async fn start(
    config: &Config,
    state: &AppState,
    tls: Option<&Tls>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Bound> {
    let devices = &state.devices;
    let mut bound = Bound::default();
    if config.roles.ingest {
        let listener = TcpListener::bind(config.device_tcp_addr)
            .await
            .with_context(|| {
                format!(
                    "HSE_DEVICE_TCP_ADDR: cannot listen on {}",
                    config.device_tcp_addr
                )
            })?;
        bound.device_tcp = Some(listener.local_addr()?);
        tracing::info!(device_tcp.addr = %listener.local_addr()?, "devices: TCP listener up");
        let accept = Arc::new(DeviceAccept(tls.map(Tls::device)));
        spawn_ingest(
            devices,
            listener,
            accept,
            config.shutdown_timeout,
            tasks,
            shutdown,
        );
    }
    if config.roles.grpc {
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("HSE_GRPC_ADDR: cannot listen on {}", config.grpc_addr))?;
        bound.grpc = Some(listener.local_addr()?);
        tracing::info!(grpc.addr = %listener.local_addr()?, "devices: gRPC up");
        let token = config.grpc_token.as_ref().map(|t| t.expose().to_owned());
        tasks.spawn(super::grpc::serve_grpc(
            devices.clone(),
            listener,
            token,
            config.connections,
            tls.map(Tls::grpc),
            shutdown.clone(),
        ));
    }
    if let Some((client, keys)) = &devices.relay {
        let relay = ChangeRelay::new(client, keys.clone())
            .await
            .context("HSE_REDIS_URL: cannot follow the device change stream")?;
        tasks.spawn(relay.run_until_stopped(devices.ingest.feed().clone(), shutdown.clone()));
    }
    if config.roles.workers
        && let Some(store) = devices.event_store.clone()
    {
        let stop = shutdown.clone();
        tasks.spawn(async move {
            store
                .run_maintenance_until_stopped(
                    MAINTENANCE_EVERY,
                    PARTITIONS_AHEAD_DAYS,
                    RETENTION_DAYS,
                    stop,
                )
                .await;
        });
    }
    if config.roles.ingest || config.roles.workers {
        tasks.spawn(gauges::run_until_stopped(devices.clone(), shutdown.clone()));
    }
    Ok(bound)
}

/// TCP sessions, the batch writer, and the shutdown sequence between them.
fn spawn_ingest(
    devices: &Devices,
    listener: TcpListener,
    accept: Arc<DeviceAccept>,
    deadline: Duration,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let listeners = TaskTracker::new();
    listeners.spawn(hse_devices::tcp::run_until_stopped_with(
        listener,
        devices.sessions.clone(),
        MAX_DEVICE_CONNECTIONS,
        accept,
    ));
    let writer_stop = CancellationToken::new();
    tasks.spawn(
        devices
            .writer(WriterConfig::default())
            .run_until_stopped(writer_stop.clone()),
    );
    tasks.spawn(stop_ingest(
        devices.clone(),
        listeners,
        shutdown.clone(),
        writer_stop,
        deadline,
    ));
}

/// On shutdown: stop accepting and end the sessions (each answers the
/// frames it holds), drain an in-process queue into storage, then stop the
/// writer (which stores and acknowledges its batch in hand first).
async fn stop_ingest(
    devices: Devices,
    listeners: TaskTracker,
    shutdown: CancellationToken,
    writer_stop: CancellationToken,
    deadline: Duration,
) {
    shutdown.cancelled().await;
    let started = tokio::time::Instant::now();
    devices.sessions.shutdown.cancel();
    listeners.close();
    devices.session_tasks.close();
    tokio::join!(listeners.wait(), devices.session_tasks.wait());
    if !devices.durable_queue {
        while devices.backlog() > 0 && started.elapsed() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if devices.backlog() > 0 {
            tracing::error!(
                events = devices.backlog(),
                "shutdown deadline: in-process events not stored"
            );
        }
    }
    writer_stop.cancel();
    tracing::info!("devices: sessions closed, writer flushed");
}

/// The device TCP listener's connections: TLS with an acceptor, else
/// plain (the handshake has the hello timeout, `hse_devices::tcp`).
struct DeviceAccept(Option<TlsAcceptor>);

impl hse_devices::tcp::Accept for DeviceAccept {
    type Stream = MaybeTls<TcpStream>;

    async fn accept(&self, stream: TcpStream) -> std::io::Result<Self::Stream> {
        match &self.0 {
            None => Ok(MaybeTls::Plain(stream)),
            Some(tls) => Ok(MaybeTls::Tls(Box::new(tls.accept(stream).await?))),
        }
    }
}
