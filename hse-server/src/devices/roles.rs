//! What each role runs: the device TCP listener, the batch writer and the
//! shutdown order between them (`ingest`), the gRPC server (`grpc`),
//! partition maintenance (`workers`), and the device gauges.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use hse_devices::grpc::DevicesService;
use hse_devices::grpc::pb::device_stream_server::DeviceStreamServer;
use hse_devices::redis::ChangeRelay;
use hse_devices::writer::WriterConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Devices, gauges};
use crate::config::Config;
use crate::state::AppState;

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
        spawn_ingest(devices, listener, config.shutdown_timeout, tasks, shutdown);
    }
    if config.roles.grpc {
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("HSE_GRPC_ADDR: cannot listen on {}", config.grpc_addr))?;
        bound.grpc = Some(listener.local_addr()?);
        tracing::info!(grpc.addr = %listener.local_addr()?, "devices: gRPC up");
        let token = config.grpc_token.as_ref().map(|t| t.expose().to_owned());
        tasks.spawn(serve_grpc(
            devices.clone(),
            listener,
            token,
            config.connections,
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
    deadline: Duration,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let listeners = TaskTracker::new();
    listeners.spawn(hse_devices::tcp::run_until_stopped(
        listener,
        devices.sessions.clone(),
        MAX_DEVICE_CONNECTIONS,
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

/// The gRPC service until `shutdown`, its connections bounded by `limits`
/// (caps per listener and per source, closed after the idle timeout; the
/// server pings every half of it so live clients are never idle).
///
/// With a `token`, every call must carry `authorization: Bearer <token>`
/// (compared in constant time); without one the service only listens on
/// loopback, which the configuration enforces.
async fn serve_grpc(
    devices: Devices,
    listener: TcpListener,
    token: Option<String>,
    limits: crate::connections::Limits,
    shutdown: CancellationToken,
) {
    let service = DevicesService::new(
        devices.ingest.clone(),
        devices.commands.clone(),
        devices.state.clone(),
        devices.history.clone(),
    )
    .with_retention(devices.sessions.config.retention)
    .with_shutdown(shutdown.clone());
    let incoming = crate::connections::grpc_incoming(listener, limits);
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(limits.idle_timeout / 2))
        .http2_keepalive_timeout(Some(limits.idle_timeout / 2))
        .add_service(DeviceStreamServer::with_interceptor(
            service,
            move |request| check_grpc_token(token.as_deref(), request),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "gRPC server failed");
    }
}

/// The gRPC interceptor: lets a call through when no token is configured or
/// when it carries the configured bearer token.
fn check_grpc_token(
    token: Option<&str>,
    request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let Some(expected) = token else {
        return Ok(request);
    };
    let presented = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let same = presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(request)
    } else {
        Err(tonic::Status::unauthenticated(
            "a valid bearer token is required",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(header: Option<&str>) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        if let Some(h) = header {
            request
                .metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        request
    }

    #[test]
    fn grpc_calls_need_the_configured_token() {
        let token = Some("s3cret-token-s3cret-token-s3cret!");
        assert!(
            check_grpc_token(
                token,
                call(Some("Bearer s3cret-token-s3cret-token-s3cret!"))
            )
            .is_ok()
        );
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("s3cret-token-s3cret-token-s3cret!"),
        ] {
            let refused = check_grpc_token(token, call(bad)).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        }
        assert!(check_grpc_token(None, call(None)).is_ok());
    }
}
