//! The TCP listener for the device line protocol.
//!
//! Accepts up to `max_connections` at once (further connections wait in the
//! kernel backlog, so memory stays bounded), runs a [`run_session`] per
//! connection and, when the context's shutdown token is cancelled, stops
//! accepting and waits for every session to finish its in-flight frames.
//!
//! What a connection is before the line protocol starts is an [`Accept`]:
//! [`Plain`] takes it as it is; a server's TLS acceptor does its handshake
//! ([`run_until_stopped_with`]). The handshake and then the `hello` frame
//! each have the hello timeout, so a connection that never gets that far
//! gives its place back.

use std::future::Future;
use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::session::{Peer, SessionContext, run_session};
use crate::transport::{LineReader, LineWriter};

/// Turns an accepted TCP connection into the byte stream the device
/// session reads and writes (a TLS handshake, say).
pub trait Accept: Send + Sync + 'static {
    /// The stream the session runs on.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Prepares `stream`; an error closes the connection.
    fn accept(&self, stream: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP: the connection as it was accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Accept for Plain {
    type Stream = TcpStream;

    async fn accept(&self, stream: TcpStream) -> io::Result<TcpStream> {
        Ok(stream)
    }
}

/// Serves plain-TCP device connections on `listener` until the context's
/// shutdown token is cancelled and every session has ended.
pub async fn run_until_stopped(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    max_connections: usize,
) {
    run_until_stopped_with(listener, ctx, max_connections, Arc::new(Plain)).await;
}

/// Serves device connections on `listener`, each prepared by `accept`
/// first, until the context's shutdown token is cancelled and every
/// session has ended.
pub async fn run_until_stopped_with<A: Accept>(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    max_connections: usize,
    accept: Arc<A>,
) {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let tracker = TaskTracker::new();
    let shutdown = ctx.shutdown.clone();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                let ctx = Arc::clone(&ctx);
                let accept = Arc::clone(&accept);
                tracker.spawn(async move {
                    serve_connection(ctx, &*accept, stream, addr.to_string()).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

async fn serve_connection<A: Accept>(
    ctx: Arc<SessionContext>,
    accept: &A,
    stream: TcpStream,
    remote_address: String,
) {
    let _ = stream.set_nodelay(true);
    let deadline = ctx.config.hello_timeout;
    let stream = tokio::select! {
        () = ctx.shutdown.cancelled() => return,
        prepared = tokio::time::timeout(deadline, accept.accept(stream)) => match prepared {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "device connection refused before hello");
                return;
            }
            Err(_) => {
                tracing::debug!("device connection not ready within the hello timeout");
                return;
            }
        },
    };
    let (read, write) = tokio::io::split(stream);
    let peer = Peer {
        protocol: "tcp",
        remote_address,
    };
    run_session(ctx, peer, LineReader::new(read), LineWriter::new(write)).await;
}
