//! The TCP listener for the device line protocol.
//!
//! Accepts up to `max_connections` at once (further connections wait in the
//! kernel backlog, so memory stays bounded), runs a [`run_session`] per
//! connection and, when the context's shutdown token is cancelled, stops
//! accepting and waits for every session to finish its in-flight frames.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::session::{Peer, SessionContext, run_session};
use crate::transport::{LineReader, LineWriter};

/// Serves device connections on `listener` until the context's shutdown
/// token is cancelled and every session has ended.
pub async fn run_until_stopped(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    max_connections: usize,
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
                tracker.spawn(async move {
                    serve_connection(ctx, stream, addr.to_string()).await;
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

async fn serve_connection(ctx: Arc<SessionContext>, stream: TcpStream, remote_address: String) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let peer = Peer {
        protocol: "tcp",
        remote_address,
    };
    run_session(ctx, peer, LineReader::new(read), LineWriter::new(write)).await;
}
