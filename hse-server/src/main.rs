//! `hse-server`: config → telemetry → build → run until stopped.
//!
//! Run with: `cargo run -p hse-server` (embedded, in-memory) or with
//! `HSE_DATABASE_URL` / `HSE_REDIS_URL` set (see `scripts/services`).
//! `hse-server bootstrap-root` creates the first root account and exits.

use hse_server::bootstrap::{Bootstrap, bootstrap_root};
use std::net::SocketAddr;

use hse_server::backends::Backends;
use hse_server::server::services;
use hse_server::state::AppState;
use hse_server::{Config, build, shutdown_signal, telemetry};

use hse_server::config::Roles;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    let (command, roles) = parse_args(std::env::args().skip(1))?;
    if let Some(roles) = roles {
        config.roles = roles;
    }
    telemetry::init(config.log_format);
    match command.as_deref() {
        None | Some("serve") => {
            let server = build(&config).await?;
            if config.database_url.is_none() || config.root_password.is_some() {
                announce_root(&config, server.state()).await?;
                print_sign_in(&config, server.local_addr()?);
            }
            server.run_until_stopped(shutdown_signal()).await
        }
        Some("bootstrap-root") => {
            let backends = Backends::connect(&config).await?;
            let tasks = tokio_util::task::TaskTracker::new();
            announce_root(&config, &services(&config, backends, &tasks)?).await?;
            print_sign_in(&config, config.http_addr);
            Ok(())
        }
        Some(other) => {
            anyhow::bail!("unknown command `{other}`: use `serve` (default) or `bootstrap-root`")
        }
    }
}

/// `[serve|bootstrap-root] [--roles api,grpc,ingest,workers]`.
fn parse_args(
    args: impl Iterator<Item = String>,
) -> anyhow::Result<(Option<String>, Option<Roles>)> {
    let (mut command, mut roles) = (None, None);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let list = match arg.strip_prefix("--roles") {
            Some("") => Some(
                args.next()
                    .ok_or_else(|| anyhow::anyhow!("--roles needs a list"))?,
            ),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        };
        match list {
            Some(list) => {
                roles = Some(Roles::parse(&list).map_err(|e| anyhow::anyhow!("--roles: {e}"))?)
            }
            None if command.is_none() && !arg.starts_with('-') => command = Some(arg),
            None => anyhow::bail!("unexpected argument `{arg}`"),
        }
    }
    Ok((command, roles))
}

/// Creates the root account if needed and prints its credentials once.
async fn announce_root(config: &Config, state: &AppState) -> anyhow::Result<()> {
    let password = config.root_password.as_ref().map(|p| p.expose().to_owned());
    let email = &config.root_email;
    match bootstrap_root(state, email, password).await? {
        Bootstrap::AlreadyThere => println!("root account {email} already exists"),
        Bootstrap::Created => {
            println!("created root account {email} (password from HSE_ROOT_PASSWORD)")
        }
        Bootstrap::CreatedWithPassword(password) => {
            println!("created root account; this password is shown only once:");
            println!("  email:    {email}");
            println!("  password: {password}");
        }
    }
    Ok(())
}

/// Says how to sign in at `addr`.
fn print_sign_in(config: &Config, addr: SocketAddr) {
    let email = &config.root_email;
    println!(
        "sign in: curl -X POST http://{addr}/v1/auth/login -H 'content-type: application/json' \\"
    );
    println!("  -d '{{\"email\":\"{email}\",\"password\":\"...\"}}'");
}
