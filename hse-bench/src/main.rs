//! `hse-bench`: the HSE benchmark harness of issue 7.
//!
//! Every figure is measured beside a baseline in the same run, on the same
//! machine, because the machine is shared and noisy: the ratio is the
//! result, the absolute number is context. Nothing here asserts speed.
//!
//! Run with: `cargo run --release -p hse-bench -- [--smoke] [--json out.json]
//! [--only ingest,latency,chart,connections,api,bookings] [--extra-group]`
//!
//! Reads `HSE_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/hse`;
//! each section works in a fresh database it creates and drops) and
//! `HSE_REDIS_URL` (default `redis://127.0.0.1:6379`; a random key prefix,
//! deleted afterwards).
//!
//! # Layout
//! - [`options`]: the command line.
//! - [`report`]: figures, the table and the JSON.
//! - [`env`](mod@env): scratch databases, Redis prefixes, RSS.
//! - [`pipeline`]: the device ingest pipeline, in process.
//! - [`load`]: the open-model device load generator (sent/acked/stored).
//! - [`ingest`], [`latency`], [`chart`], [`connections`], [`api`],
//!   [`bookings`]: one section each.
//! - [`http_load`]: 64 keep-alive HTTP clients.

mod api;
mod bookings;
mod chart;
mod connections;
mod env;
mod http_load;
mod ingest;
mod latency;
mod load;
mod options;
mod pipeline;
mod report;

use std::time::Instant;

use options::{Options, Section};
use report::Report;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", options::USAGE);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some(connections::HOLD_COMMAND) {
        return connections::hold(&args[1..]);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.first().map(String::as_str) == Some(connections::SECTION_COMMAND) {
        let env = env::Env::from_env(args.iter().any(|a| a == "--smoke"));
        return runtime.block_on(connections::measure(&env));
    }
    let options = Options::parse(&args)?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let mut env = env::Env::from_env(options.smoke);
    env.extra_group = options.extra_group;
    let mut report = Report::new(options.smoke, env::machine().await);
    if options.extra_group {
        report.note("run with --extra-group: one more consumer group (`bench-module`) on the events stream, read and acked by a follower".to_owned());
    }
    let started = Instant::now();
    let mut max_rate = None;
    for section in &options.only {
        eprintln!("hse-bench: {} ...", section.name());
        let at = Instant::now();
        match section {
            Section::Ingest => max_rate = Some(ingest::run(&env, &mut report).await?),
            Section::Latency => latency::run(&env, max_rate, &mut report).await?,
            Section::Chart => chart::run(&env, &mut report).await?,
            Section::Connections => connections::run(&env, &mut report).await?,
            Section::Api => api::run(&env, &mut report).await?,
            Section::Bookings => bookings::run(&env, &mut report).await?,
        }
        eprintln!("hse-bench: {} done in {:.1?}", section.name(), at.elapsed());
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    print!("{}", report.table());
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
