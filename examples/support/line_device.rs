//! Door locks as a client registers them over HTTP and as they speak
//! the line protocol of `docs/PROTOCOL.md` (shared by the device examples and
//! the end-to-end test).

use std::net::SocketAddr;

use anyhow::Context;
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;

use crate::http::{Api, id};

/// Registers an organization, a hotel and `n` door locks, one per room;
/// returns each lock's id and secret.
pub(crate) async fn register_locks(root: &Api, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let org = root
        .post(
            "/v1/organizations",
            json!({"name": "Simulated Hotels"}),
            StatusCode::CREATED,
        )
        .await?;
    let est = root
        .post(
            "/v1/establishments",
            json!({"organization_id": id(&org)?, "name": "Hotel", "timezone": "UTC"}),
            StatusCode::CREATED,
        )
        .await?;
    let mut locks = Vec::with_capacity(n);
    for room in 1..=n {
        let area = root
            .post(
                "/v1/areas",
                json!({"establishment_id": id(&est)?, "name": format!("Room {room}"), "type": "room"}),
                StatusCode::CREATED,
            )
            .await?;
        let lock = root
            .post(
                "/v1/devices",
                json!({"area_id": id(&area)?, "device_type": "doorlock", "protocol": "hse-tcp"}),
                StatusCode::CREATED,
            )
            .await?;
        let secret = lock["secret"].as_str().context("no secret")?.to_owned();
        locks.push((id(&lock)?, secret));
    }
    Ok(locks)
}

/// The reading half of a device connection, TCP or TLS.
pub(crate) type DeviceRead = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half.
pub(crate) type DeviceWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A device connection: JSON lines both ways.
pub(crate) struct LineDevice {
    /// Frames from the server.
    pub(crate) lines: Lines<BufReader<DeviceRead>>,
    /// Frames to the server.
    pub(crate) out: DeviceWrite,
}

impl LineDevice {
    /// Connects and says hello; fails unless welcomed.
    pub(crate) async fn connect(
        addr: SocketAddr,
        device_id: &str,
        secret: &str,
    ) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("device TCP {addr}"))?;
        stream.set_nodelay(true)?;
        Self::hello(stream, device_id, secret).await
    }

    /// Says hello on an open connection (plain or TLS); fails unless
    /// welcomed.
    pub(crate) async fn hello<S>(stream: S, device_id: &str, secret: &str) -> anyhow::Result<Self>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, out) = tokio::io::split(stream);
        let mut device = Self {
            lines: BufReader::new(Box::new(read) as DeviceRead).lines(),
            out: Box::new(out),
        };
        let hello =
            json!({"type": "hello", "device_id": device_id, "token": secret, "protocol": 1});
        device.send(&hello).await?;
        let welcome = device.recv().await?.context("closed before welcome")?;
        anyhow::ensure!(welcome["type"] == "welcome", "refused: {welcome}");
        Ok(device)
    }

    /// Sends one frame.
    pub(crate) async fn send(&mut self, frame: &Value) -> anyhow::Result<()> {
        self.out.write_all(format!("{frame}\n").as_bytes()).await?;
        Ok(())
    }

    /// The next frame; `None` when the server closed the connection.
    pub(crate) async fn recv(&mut self) -> anyhow::Result<Option<Value>> {
        match self.lines.next_line().await? {
            Some(line) => Ok(Some(serde_json::from_str(&line)?)),
            None => Ok(None),
        }
    }
}
