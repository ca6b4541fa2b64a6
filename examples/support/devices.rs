//! What the device examples share: an embedded server on free ports
//! with a root account (the locks and the device side are in
//! `line_device.rs`).

use std::net::SocketAddr;

use anyhow::Context;
use tokio::sync::oneshot;

use crate::http::Api;

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
