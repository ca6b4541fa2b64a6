//! `hse-server`: config → telemetry → build → run until stopped.
//!
//! Run with: `cargo run -p hse-server` (embedded, in-memory) or with
//! `HSE_DATABASE_URL` / `HSE_REDIS_URL` set (see `scripts/services`).
//! `hse-server bootstrap-root` creates the first root account and exits.
//! `--config PATH` (or `HSE_CONFIG`) reads a TOML file beneath the
//! environment (`deploy/hse.toml` is the commented example).

use hse_server::bootstrap::{Bootstrap, bootstrap_root, has_accounts};
use std::net::SocketAddr;
use std::path::PathBuf;

use hse_server::backends::{Backends, Check};
use hse_server::server::services;
use hse_server::state::AppState;
use hse_server::{Config, build, shutdown_signal, telemetry};

use hse_server::config::Roles;

/// mimalloc returns freed memory to the system: after a flood of
/// connections closes, the process shrinks back (glibc's allocator kept
/// every page; `tests/server/hardening.rs` measures it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args {
        command,
        roles,
        config: file,
    } = parse_args(std::env::args().skip(1))?;
    if command.as_deref() == Some("help") {
        print!("{HELP}");
        return Ok(());
    }
    let mut config = Config::load(file.as_deref())?;
    if let Some(roles) = roles {
        config.roles = roles;
    }
    telemetry::init(config.log_format);
    match command.as_deref() {
        None | Some("serve") => {
            let server = build(&config).await?;
            greet(&config, server.state(), server.local_addr()?).await?;
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

/// What `--help` prints.
const HELP: &str = "\
hse-server: the HSE reference server (HTTP API, gRPC, device listeners, workers)

USAGE:
    hse-server [serve] [--roles LIST] [--config PATH]   run the server (the default command)
    hse-server bootstrap-root [--config PATH]           create the first root account,
                                                        print its password once, exit
    hse-server --help                                   this text

OPTIONS:
    --roles LIST    comma-separated subset of api,grpc,ingest,workers (default: all; or HSE_ROLES)
    --config PATH   TOML configuration file (or HSE_CONFIG); its keys are the variables
                    below without HSE_, in lower case (http_addr = \"0.0.0.0:8080\");
                    a variable set in the environment overrides its key

ENVIRONMENT (a bad value stops start-up naming the variable, or the file and key):
    HSE_CONFIG             TOML configuration file, as --config           [none]
    HSE_HTTP_ADDR          HTTP listen address, host:port (a name resolves;
                           port 0: any free port)                         [127.0.0.1:8080]
    HSE_GRPC_ADDR          gRPC listen address                           [127.0.0.1:50051]
    HSE_GRPC_TOKEN         bearer token gRPC callers must send, >= 32 chars
                           (gRPC is a service interface, not per tenant)  [none: loopback only]
    HSE_DEVICE_TCP_ADDR    device TCP listen address                     [127.0.0.1:7700]
    HSE_INGEST_MAX_LAG_MS  nack overloaded while storage lags more, ms   [5000]
    HSE_INGEST_ENQUEUE_TIMEOUT_MS  wait for Redis to answer an enqueue, then
                           nack outcome_unknown, ms (100..=60000)        [5000]
    HSE_INGEST_MEMORY_QUEUE_MB  in-process queue memory bound, MiB       [256]
    HSE_ROLES              same as --roles                               [api,grpc,ingest,workers]
    HSE_DATABASE_URL       PostgreSQL URL; unset runs in memory (NOTHING IS DURABLE)
                           (a role bound by row-level security: no SUPERUSER,
                           no BYPASSRLS, owns no table; checked at start)
    HSE_DATABASE_MIGRATION_URL  PostgreSQL URL of the schema owner; migrations
                           run with it at start (unset: none run)
    HSE_REDIS_URL          Redis URL; unset uses in-process queues
    HSE_REDIS_PREFIX       prefix of every Redis key it writes           [hse:]
    HSE_REDIS_DURABILITY   warn or require: start-up on a Redis that can lose
                           acknowledged events (appendonly, fsync, eviction) [warn]
    HSE_NODE_NAME          this node's writer name, stable across restarts [$HOSTNAME]
    HSE_JWT_SIGNING_KEY    Ed25519 seed, 64 hex chars; share between nodes [random per start]
    HSE_PUBLIC_URL         token issuer (iss); share it between nodes, or share
                           HSE_JWT_SIGNING_KEY and leave it unset [urn:hse with a
                           signing key, else http://HSE_HTTP_ADDR]
    HSE_ROOT_EMAIL         root account to bootstrap                     [root@hse.local]
    HSE_ROOT_PASSWORD      its password                                  [generated, printed once]
    HSE_CORS_ORIGINS       comma-separated browser origins allowed       [none]
    HSE_WEBHOOK_URL        http://host[:port][/path] for booking notifications (HMAC-signed)
    HSE_WEBHOOK_SECRET     its signing secret, >= 16 bytes (required with the URL)
    HSE_SMTP_ADDR          host:port of an SMTP relay for guest emails
    HSE_SMTP_FROM          sender address (required with the relay)
    HSE_STAY_INTERVAL_MS   pause between automatic check-in/check-out passes,
                           100..=3600000                                 [30000]
    HSE_SHUTDOWN_TIMEOUT_S drain deadline on SIGTERM, seconds            [10]
    HSE_PRINCIPAL_CACHE_MS ms a user's role/grants read is reused (0: never) [1000]
    HSE_PLACEMENT_CACHE_MS ms a resource's place in the tenant tree is reused [1000]
    HSE_HEADER_TIMEOUT_MS  ms for a complete HTTP request head (also ends idle keep-alives) [10000]
    HSE_IDLE_TIMEOUT_MS    ms an HTTP or gRPC connection may move no byte  [60000]
    HSE_MAX_CONNECTIONS    connections held open per listener (HTTP, gRPC) [10000]
    HSE_MAX_CONNECTIONS_PER_IP  of those, from one IPv4 address or IPv6 /64;
                           behind a proxy raise it to the total          [256]
    HSE_DEVICE_HELLO_TIMEOUT_MS  ms a device connection has for its hello [10000]
    HSE_TLS_CERT           PEM certificate chain; with HSE_TLS_KEY the HTTP, gRPC
                           and device TCP listeners speak TLS only; re-read on
                           SIGHUP and when the files change               [none: plain text]
    HSE_TLS_KEY            PEM private key of that certificate            [none]
    HSE_LOG_FORMAT         text or json (logs go to stdout)              [text]
    RUST_LOG               log filter                                    [info]
    Details: hse-server/src/config/mod.rs and the README.
";

/// The command line.
#[derive(Debug, Default)]
struct Args {
    /// `serve` (`None`), `bootstrap-root` or `help`.
    command: Option<String>,
    /// `--roles`.
    roles: Option<Roles>,
    /// `--config`.
    config: Option<PathBuf>,
}

/// `[serve|bootstrap-root|--help] [--roles api,grpc,ingest,workers] [--config PATH]`.
fn parse_args(args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut parsed = Args::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if let Some(list) = option_value(&arg, "--roles", &mut args)? {
            let roles = Roles::parse(&list).map_err(|e| anyhow::anyhow!("--roles: {e}"))?;
            parsed.roles = Some(roles);
        } else if let Some(path) = option_value(&arg, "--config", &mut args)? {
            parsed.config = Some(PathBuf::from(path));
        } else if arg == "--help" || arg == "-h" {
            parsed.command = Some("help".to_owned());
        } else if parsed.command.is_none() && !arg.starts_with('-') {
            parsed.command = Some(arg);
        } else {
            anyhow::bail!("unexpected argument `{arg}`");
        }
    }
    Ok(parsed)
}

/// The value of `--name VALUE` or `--name=VALUE` when `arg` is that option.
fn option_value(
    arg: &str,
    name: &str,
    rest: &mut impl Iterator<Item = String>,
) -> anyhow::Result<Option<String>> {
    match arg.strip_prefix(name) {
        Some("") => rest
            .next()
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value")),
        Some(value) => Ok(value.strip_prefix('=').map(str::to_owned)),
        None => Ok(None),
    }
}

/// What start-up says for the roles this process runs: the root account
/// it created (embedded, or with `HSE_ROOT_PASSWORD`), or that none exists
/// yet and how to create one; how to sign in, when it serves the API.
async fn greet(config: &Config, state: &AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let embedded = config.database_url.is_none();
    if !config.roles.api && (embedded || config.root_password.is_none()) {
        // No API here: an in-memory account nobody could sign in with, or
        // a missing one the API nodes report.
        return Ok(());
    }
    if embedded || config.root_password.is_some() {
        root_when_postgres_answers(config, state).await?;
    } else if !has_accounts(state).await.unwrap_or(true) {
        tracing::warn!(
            "no root account exists in this database, so nobody can sign in: create one with \
             `hse-server bootstrap-root` (same configuration; it prints a generated password \
             once), or set HSE_ROOT_PASSWORD (and HSE_ROOT_EMAIL) for the next start"
        );
        return Ok(());
    }
    if config.roles.api {
        print_sign_in(config, addr);
    }
    Ok(())
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

/// [`announce_root`] now, or, when PostgreSQL does not answer (the node
/// started without it to ingest into Redis), in the background once it
/// does.
async fn root_when_postgres_answers(config: &Config, state: &AppState) -> anyhow::Result<()> {
    let Err(e) = announce_root(config, state).await else {
        return Ok(());
    };
    if state.backends.check_postgres().await != Check::Down {
        return Err(e);
    }
    tracing::warn!(error = %format!("{e:#}"), "root account not checked: PostgreSQL does not answer; retrying");
    let (config, state) = (config.clone(), state.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if announce_root(&config, &state).await.is_ok() {
                return;
            }
        }
    });
    Ok(())
}

/// Says how to sign in at `addr`.
fn print_sign_in(config: &Config, addr: SocketAddr) {
    let email = &config.root_email;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "sign in: curl -X POST {scheme}://{addr}/v1/auth/login -H 'content-type: application/json' \\"
    );
    println!("  -d '{{\"email\":\"{email}\",\"password\":\"...\"}}'");
}
