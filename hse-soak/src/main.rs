//! `hse-soak`: the fault soak of issue 8.
//!
//! Runs two full `hse-server` nodes (by default; `--nodes 1` for one) and
//! a standalone `hse-devices-writer` on the soak's own PostgreSQL and
//! Redis, under a device load split across the nodes (a third of the
//! devices, chosen from the seed, send no `ts_ms`), booking traffic and
//! API reads as two tenants (one through each node), and injects one
//! fault after another from a seeded schedule: SIGKILL of a server node or
//! of the batch writer, SIGSTOP of PostgreSQL or Redis for 5 s,
//! crash-restarts of PostgreSQL and of Redis (`appendonly yes`,
//! `appendfsync always`; with two nodes each Redis restart is followed by
//! commands and a door code through one node to a lock on the other), and
//! latency or cut connections through TCP proxies. A supervisor restarts
//! killed processes as systemd would; nothing is restarted by hand. At the
//! end the checkers run on the stored data, and the result table is
//! printed; the exit code is 1 when a checker fails.
//!
//! Run with `scripts/soak --seed N --minutes M` (which builds the binaries
//! first), or `hse-soak --seed N --minutes M [--nodes 1|2] [--timed-only]
//! [--server PATH] [--writer PATH] [--keep] [--dry-run] [--sabotage WHAT]`.
//! The same seed (and options) replays the same schedule.
//!
//! # Layout
//! - [`schedule`]: the seeded fault schedule.
//! - [`services`]: the private PostgreSQL and Redis.
//! - [`proxy`]: the latency/cut TCP proxy.
//! - [`supervisor`]: restarts what ends; [`node`]: the server nodes.
//! - [`crossnode`]: the cross-node probes after a Redis restart.
//! - [`http`] (the examples' client, shared), [`tenants`]: the API client
//!   and the two tenants.
//! - [`load`]: the reconnecting device load.
//! - [`traffic`]: bookings and reads.
//! - [`checks`]: the checkers.
//! - [`soak`]: the run itself; [`report`]: the result table.

mod checks;
mod crossnode;
#[path = "../../examples/support/http.rs"]
mod http;
mod load;
mod node;
mod proxy;
mod report;
mod schedule;
mod services;
mod soak;
mod supervisor;
mod tenants;
mod traffic;

use std::path::PathBuf;

/// The command line.
#[derive(Debug)]
pub(crate) struct Options {
    /// The schedule's seed.
    pub(crate) seed: u64,
    /// How long faults are injected.
    pub(crate) minutes: f64,
    /// The `hse-server` binary.
    pub(crate) server: PathBuf,
    /// The `hse-devices-writer` binary.
    pub(crate) writer: PathBuf,
    /// Full server nodes on the same stores (1 or 2).
    pub(crate) nodes: usize,
    /// Whether some devices send no `ts_ms` (one in three).
    pub(crate) timeless: bool,
    /// Keep the run directory (logs, data) even when every check passes.
    pub(crate) keep: bool,
    /// Only print the schedule.
    pub(crate) dry_run: bool,
    /// A guarantee to remove before the load (negative control).
    pub(crate) sabotage: Option<soak::Sabotage>,
}

const USAGE: &str = "usage: hse-soak [--seed N] [--minutes M] [--nodes 1|2] [--timed-only] [--server PATH] [--writer PATH] [--keep] [--dry-run]
    --nodes N   full server nodes on the same PostgreSQL and Redis (default 2); with 2,
                every Redis restart is followed by cross-node commands and door codes
    --timed-only
                every device sends ts_ms (by default one in three, from the seed, sends none)
    --dry-run   print the seed's schedule and exit
    --sabotage idempotency|exclusion|codes
                negative control: drop the event idempotency keys, the bookings'
                exclusion constraint or the door codes' one before the load; the
                matching checker must then fail";

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let here = std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let mut options = Self {
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
            minutes: 30.0,
            server: here.join("hse-server"),
            writer: here.join("hse-devices-writer"),
            nodes: 2,
            timeless: true,
            keep: false,
            dry_run: false,
            sabotage: None,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| anyhow::anyhow!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--seed" => options.seed = value()?.parse()?,
                "--minutes" => options.minutes = value()?.parse()?,
                "--server" => options.server = value()?.into(),
                "--writer" => options.writer = value()?.into(),
                "--nodes" => options.nodes = value()?.parse()?,
                "--timed-only" => options.timeless = false,
                "--keep" => options.keep = true,
                "--dry-run" => options.dry_run = true,
                "--sabotage" => options.sabotage = Some(soak::Sabotage::parse(&value()?)?),
                "--help" | "-h" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => anyhow::bail!("unexpected argument `{other}`\n{USAGE}"),
            }
        }
        anyhow::ensure!(options.minutes > 0.0, "--minutes must be positive\n{USAGE}");
        anyhow::ensure!(
            (1..=2).contains(&options.nodes),
            "--nodes must be 1 or 2\n{USAGE}"
        );
        for bin in [&options.server, &options.writer]
            .into_iter()
            .filter(|_| !options.dry_run)
        {
            anyhow::ensure!(
                bin.exists(),
                "{} is missing: build it (cargo build -p hse-server --bins --all-features) or pass its path",
                bin.display()
            );
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    if options.dry_run {
        soak::print_schedule(&options);
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(soak::run(&options))?;
    print!("{}", report.table());
    if report.passed() {
        Ok(())
    } else {
        eprintln!(
            "soak: FAILED; replay with: scripts/soak --seed {} --minutes {}",
            options.seed, options.minutes
        );
        std::process::exit(1);
    }
}
