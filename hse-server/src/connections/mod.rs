//! The HTTP and gRPC listeners' connections, bounded: how many are open
//! (in all and per source address), how long a request head may take and
//! how long a connection may stay silent.
//!
//! | bound | HTTP (and the WebSocket device endpoint) | gRPC |
//! |---|---|---|
//! | connections in all, per source | [`Limits::max_connections`], [`Limits::max_connections_per_ip`]: the excess is accepted and closed at once ([`gate`]) | the same, its own count |
//! | request head | [`Limits::header_timeout`], from the connection's opening or its previous answer, so it also ends idle keep-alive connections (hyper's timer) | — |
//! | silence | [`Limits::idle_timeout`]: no byte either way ([`watched`]) while no request is being handled; not for an upgraded WebSocket, which the device session bounds itself (`hello` deadline, heartbeats) | [`Limits::idle_timeout`]; the server pings every half of it, so live clients stay |
//!
//! With TLS ([`crate::tls`]) the handshake comes after admission and must
//! finish within [`Limits::header_timeout`], on both listeners; the idle
//! timeout counts the encrypted bytes.
//!
//! A WebSocket keeps its connection's place until it is closed. On
//! shutdown the HTTP listener stops accepting, each connection finishes
//! its request in flight and closes, and [`serve_http`] returns once all
//! are closed.

pub mod gate;
pub mod watched;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::Stream;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use gate::{Caps, Gate, Slot};
use watched::{IdleSwitch, Watched};

use crate::tls::MaybeTls;

/// The connection bounds of the HTTP and gRPC listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time for a complete HTTP request head (`HSE_HEADER_TIMEOUT_MS`).
    pub header_timeout: Duration,
    /// Silence after which a connection is closed (`HSE_IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// Connections one listener holds open (`HSE_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Of those, from one source address (`HSE_MAX_CONNECTIONS_PER_IP`).
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 256,
        }
    }
}

impl Limits {
    fn caps(&self) -> Caps {
        Caps {
            total: self.max_connections,
            per_source: self.max_connections_per_ip,
        }
    }
}

/// Pause after a failed accept (out of descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts the next connection the gate admits; refused ones are closed
/// (dropped) at once.
async fn admitted(listener: &TcpListener, gate: &std::sync::Arc<Gate>) -> (TcpStream, Slot) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Ok(slot) = gate.admit(peer.ip()) {
                    let _ = stream.set_nodelay(true);
                    return (stream, slot);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves `router` over HTTP/1.1 on `listener` (inside TLS with `tls`)
/// until `shutdown`; then stops accepting, lets each connection finish its
/// request in flight, and returns when every connection is closed.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let gate = Gate::new("http", limits.caps());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connections = TaskTracker::new();
    loop {
        let (stream, slot) = tokio::select! {
            () = shutdown.cancelled() => break,
            admitted = admitted(&listener, &gate) => admitted,
        };
        // The client's address reaches handlers as axum's `ConnectInfo`
        // (sign-in throttling counts failures per source).
        let peer = stream.peer_addr().ok().map(axum::extract::ConnectInfo);
        let (io, switch) = Watched::new(stream, slot, limits.idle_timeout);
        let connection = Connection {
            builder: builder.clone(),
            switch,
            peer,
            router: router.clone(),
            shutdown: shutdown.clone(),
        };
        let Some(tls) = tls.clone() else {
            connections.spawn(connection.serve(io));
            continue;
        };
        // The handshake has the request head's time (a client that never
        // completes it, or speaks plain text, is closed and frees its place).
        connections.spawn(async move {
            if let Some(io) = handshake(&tls, io, limits.header_timeout).await {
                connection.serve(io).await;
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// The TLS handshake on an admitted connection, within `deadline`.
async fn handshake<IO>(tls: &TlsAcceptor, io: IO, deadline: Duration) -> Option<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(deadline, tls.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// What one HTTP connection is served with.
struct Connection {
    builder: http1::Builder,
    switch: IdleSwitch,
    peer: Option<axum::extract::ConnectInfo<SocketAddr>>,
    router: Router,
    shutdown: CancellationToken,
}

impl Connection {
    /// Serves `io` to its end, or to the end of its request in flight once
    /// `shutdown` is cancelled.
    async fn serve<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            switch,
            peer,
            router,
            shutdown,
        } = self;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut router = router.clone();
            let switch = switch.clone();
            let mut request = request.map(Body::new);
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            async move {
                let _busy = switch.busy();
                let response = router.call(request).await?;
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    switch.disarm();
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                return;
            }
            () = shutdown.cancelled() => {}
        }
        connection.as_mut().graceful_shutdown();
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "HTTP connection ended during shutdown");
        }
    }
}

/// A gRPC connection: admitted, watched for silence, TLS if configured.
pub type GrpcConnection = MaybeTls<Watched<TcpStream>>;

/// Connections whose TLS handshake is done but tonic has not taken yet.
const GRPC_HANDED_OVER: usize = 64;

/// The connections of a gRPC listener, admitted by their own gate,
/// watched for silence and, with `tls`, past their handshake (within the
/// header timeout; handshakes run side by side), for tonic's
/// `serve_with_incoming_shutdown`. Accepting stops when the stream is
/// dropped.
pub fn grpc_incoming(
    listener: TcpListener,
    limits: Limits,
    tls: Option<TlsAcceptor>,
) -> impl Stream<Item = io::Result<GrpcConnection>> {
    let (tx, rx) = tokio::sync::mpsc::channel(GRPC_HANDED_OVER);
    tokio::spawn(async move {
        let gate = Gate::new("grpc", limits.caps());
        loop {
            let (stream, slot) = tokio::select! {
                () = tx.closed() => return,
                admitted = admitted(&listener, &gate) => admitted,
            };
            let (io, _always_armed) = Watched::new(stream, slot, limits.idle_timeout);
            let Some(tls) = tls.clone() else {
                if tx.send(Ok(MaybeTls::Plain(io))).await.is_err() {
                    return;
                }
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(io) = handshake(&tls, io, limits.header_timeout).await {
                    let _ = tx.send(Ok(MaybeTls::Tls(Box::new(io)))).await;
                }
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await?;
        Some((next, rx))
    })
}
