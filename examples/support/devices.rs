//! What the device examples share: an embedded server on free ports,
//! door locks registered over HTTP, and a device speaking the line
//! protocol of PROTOCOL.md.

use std::net::SocketAddr;

use anyhow::Context;
use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

use crate::http::{Api, id};

/// The root account of the embedded server.
pub(crate) const ROOT: &str = "root@hse.local";
const ROOT_PASSWORD: &str = "example root password";

/// An in-memory server running in this process.
pub(crate) struct Embedded {
    /// Its HTTP base URL.
    pub(crate) http: String,
    /// Its device TCP address.
    pub(crate) device_tcp: SocketAddr,
    /// Its gRPC address.
    pub(crate) grpc: SocketAddr,
    stop: oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Embedded {
    /// Starts one on free ports, with a root account.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let vars = [
            ("HSE_HTTP_ADDR", "127.0.0.1:0"),
            ("HSE_GRPC_ADDR", "127.0.0.1:0"),
            ("HSE_DEVICE_TCP_ADDR", "127.0.0.1:0"),
            ("HSE_ROOT_PASSWORD", ROOT_PASSWORD),
        ];
        let config = hse_server::Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })?;
        let server = hse_server::build(&config).await?;
        let password = Some(ROOT_PASSWORD.to_owned());
        hse_server::bootstrap::bootstrap_root(server.state(), ROOT, password).await?;
        let http = format!("http://{}", server.local_addr()?);
        let device_tcp = server.device_tcp_addr().context("ingest role")?;
        let grpc = server.grpc_addr().context("grpc role")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            http,
            device_tcp,
            grpc,
            stop,
            serving,
        })
    }

    /// Root's client.
    pub(crate) async fn root(&self) -> anyhow::Result<Api> {
        Api::new(&self.http).login(ROOT, ROOT_PASSWORD).await
    }

    /// Stops it as SIGTERM would (events acknowledged so far are stored).
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.serving.await?
    }
}

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

/// A device connection: JSON lines both ways.
pub(crate) struct LineDevice {
    /// Frames from the server.
    pub(crate) lines: Lines<BufReader<OwnedReadHalf>>,
    /// Frames to the server.
    pub(crate) out: OwnedWriteHalf,
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
        let (read, out) = stream.into_split();
        let mut device = Self {
            lines: BufReader::new(read).lines(),
            out,
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
