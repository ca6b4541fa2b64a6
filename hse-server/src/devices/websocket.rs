//! A device session over WebSocket: one text message is one frame
//! (`docs/PROTOCOL.md`), the same session implementation as TCP.
//!
//! Text messages go to the session; binary, ping and pong messages are
//! ignored (axum answers pings); a close ends the session. The session's
//! frames go out through a bounded channel, so a slow device slows its own
//! session only. Sessions are tracked on [`Devices::session_tasks`] so
//! shutdown waits for them to answer what they hold.

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt, future};
use hse_devices::session::{Peer, run_session};
use hse_devices::transport::{ChannelWriter, TextFrames};
use tokio::sync::mpsc;

use super::Devices;

/// Frames buffered towards the device.
const OUTBOUND_BUFFER: usize = 64;

/// Runs one device session on an upgraded socket until either side ends it.
pub async fn serve(devices: Devices, socket: WebSocket, remote_address: String) {
    let (mut to_device, from_device) = socket.split();
    let frames = from_device
        .take_while(|m| future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Text(text)) => Some(text.as_str().to_owned()),
                _ => None,
            })
        });
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOUND_BUFFER);
    let peer = Peer {
        protocol: "websocket",
        remote_address,
    };
    let session = run_session(
        devices.sessions.clone(),
        peer,
        TextFrames::new(Box::pin(frames)),
        ChannelWriter::new(tx),
    );
    let forward = async move {
        while let Some(frame) = rx.recv().await {
            if to_device.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
        let _ = to_device.send(Message::Close(None)).await;
    };
    devices
        .session_tasks
        .track_future(async move {
            tokio::join!(session, forward);
        })
        .await;
}
