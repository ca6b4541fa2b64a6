//! `hse-server`: config → telemetry → build → run until stopped.
//!
//! Run with: `cargo run -p hse-server` (embedded, in-memory) or with
//! `HSE_DATABASE_URL` / `HSE_REDIS_URL` set (see `scripts/services`).

use hse_server::{Config, build, shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    let server = build(&config).await?;
    server.run_until_stopped(shutdown_signal()).await
}
