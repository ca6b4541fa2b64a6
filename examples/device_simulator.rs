//! Run with: `cargo run --example device_simulator -- --devices 20 --rate 50 --seconds 10`
//!
//! A fleet of door locks on the device TCP protocol: each lock sends
//! `--rate` events per second (`--batch` per frame) for `--seconds`,
//! answers commands the way a lock does (`program_code`, `remove_code`,
//! `unlock`, `set_state`, `reboot`), and at the end the fleet prints how
//! long the server took to acknowledge a frame (the time until its events
//! were durably enqueued): p50, p90, p99 and max. Usable as a load
//! generator against a real server.
//!
//! Where the locks come from:
//! - by default an in-memory server is started here and the locks are
//!   registered on it over HTTP;
//! - `--register --http http://127.0.0.1:8080 --tcp 127.0.0.1:7700`
//!   registers `--devices` locks on that server as root
//!   (`HSE_ROOT_EMAIL`, default `root@hse.local`, and `HSE_ROOT_PASSWORD`);
//! - `--tcp 127.0.0.1:7700 --device <id>:<secret> ...` uses existing devices.
//!
//! `--tls-ca ca.pem` connects over TLS (a server with `HSE_TLS_CERT`),
//! trusting that CA and checking the certificate's name (`--tls-name`,
//! default `localhost`).

#[path = "support/device_tls.rs"]
mod device_tls;
#[path = "support/devices.rs"]
mod devices;
#[path = "support/http.rs"]
mod http;
#[path = "support/line_device.rs"]
mod line_device;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use device_tls::DeviceTls;
use devices::{Embedded, ROOT};
use http::Api;
use line_device::{LineDevice, register_locks};

/// The command line.
#[derive(Debug)]
struct Args {
    tcp: Option<SocketAddr>,
    http: Option<String>,
    register: bool,
    devices: Vec<(String, String)>,
    count: usize,
    rate: f64,
    seconds: u64,
    batch: usize,
    tls_ca: Option<PathBuf>,
    tls_name: String,
}

const USAGE: &str = "device_simulator: a fleet of door locks on the device TCP protocol

USAGE:
    device_simulator [--devices N] [--rate EVENTS_PER_S] [--seconds S] [--batch EVENTS_PER_FRAME]
    device_simulator --register --http URL --tcp HOST:PORT [--devices N] ...
    device_simulator --tcp HOST:PORT --device ID:SECRET [--device ID:SECRET ...] ...

    (default)     starts an in-memory server here and registers N locks on it
    --register    registers N locks as root on the server at --http, then connects them
                  to --tcp; needs HSE_ROOT_PASSWORD (and HSE_ROOT_EMAIL if not
                  root@hse.local) in the environment
    --device      existing devices, e.g. the secrets `cargo run --example onboarding` prints

OPTIONS:
    --devices N         locks                                  [10]
    --rate R            events per second per lock             [10]
    --seconds S         how long to send                       [10]
    --batch B           events per frame, 1 to 1000            [1]
    --tls-ca PATH       connect over TLS, trusting this PEM CA  [plain TCP]
    --tls-name NAME     the name the server certificate must carry [localhost]

ENVIRONMENT:
    HSE_ROOT_EMAIL      root account for --register            [root@hse.local]
    HSE_ROOT_PASSWORD   its password (required with --register)";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        tcp: None,
        http: None,
        register: false,
        devices: Vec::new(),
        count: 10,
        rate: 10.0,
        seconds: 10,
        batch: 1,
        tls_ca: None,
        tls_name: "localhost".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--devices" => args.count = value()?.parse()?,
            "--rate" => args.rate = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--tcp" => args.tcp = Some(value()?.parse()?),
            "--http" => args.http = Some(value()?),
            "--register" => args.register = true,
            "--tls-ca" => args.tls_ca = Some(value()?.into()),
            "--tls-name" => args.tls_name = value()?,
            "--device" => {
                let pair = value()?;
                let (id, secret) = pair.split_once(':').context("--device wants ID:SECRET")?;
                args.devices.push((id.to_owned(), secret.to_owned()));
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    anyhow::ensure!(
        args.rate > 0.0 && args.batch >= 1 && args.batch <= 1000,
        "rate > 0, batch 1-1000"
    );
    Ok(args)
}

/// What one lock measured.
#[derive(Debug, Default)]
struct Report {
    sent: u64,
    acked_ms: Vec<f64>,
    nacked: u64,
    commands: u64,
}

/// A lock's memory: the codes programmed on it.
#[derive(Debug, Default)]
struct Lock {
    codes: HashSet<String>,
}

impl Lock {
    /// Carries out a command and says how it went.
    fn answer(&mut self, command: &Value) -> (bool, String) {
        let code_id = command["params"]["code_id"].as_str().map(str::to_owned);
        match command["command_type"].as_str().unwrap_or_default() {
            "program_code" => match (code_id, command["params"]["code"].as_str()) {
                (Some(id), Some(_pin)) => {
                    self.codes.insert(id);
                    (true, "programmed".into())
                }
                _ => (false, "program_code needs code_id and code".into()),
            },
            "remove_code" => {
                let removed = code_id.is_some_and(|id| self.codes.remove(&id));
                (
                    true,
                    if removed {
                        "removed"
                    } else {
                        "was not programmed"
                    }
                    .into(),
                )
            }
            "unlock" => (true, "unlocked".into()),
            "set_state" => (true, "state set".into()),
            "reboot" => (true, "rebooting".into()),
            other => (false, format!("unsupported command {other}")),
        }
    }
}

/// One frame of `batch` readings.
fn frame(seq: u64, batch: usize) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = (0..batch)
        .map(|i| {
            let value = 20.0 + ((seq as f64 + i as f64) / 10.0).sin() * 2.0;
            json!({"event_type": "temperature", "value": value, "unit": "C", "ts_ms": now})
        })
        .collect();
    json!({"type": "events", "seq": seq, "events": events})
}

/// Runs one lock until `until`, then waits briefly for the last answers.
async fn run_lock(
    addr: SocketAddr,
    tls: Option<Arc<DeviceTls>>,
    id: String,
    secret: String,
    args: &Args,
    until: Instant,
) -> anyhow::Result<Report> {
    let LineDevice { mut lines, mut out } = match &tls {
        None => LineDevice::connect(addr, &id, &secret).await?,
        Some(tls) => tls.connect(addr, &id, &secret).await?,
    };
    let mut report = Report::default();
    let mut lock = Lock::default();
    let mut in_flight: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let mut seq = 0;
    let grace = until + Duration::from_secs(5);
    loop {
        let sending = Instant::now() < until;
        if !sending && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if sending => {
                seq += 1;
                out.write_all(format!("{}\n", frame(seq, args.batch)).as_bytes()).await?;
                in_flight.insert(seq, Instant::now());
                report.sent += args.batch as u64;
            }
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let answer: Value = serde_json::from_str(&line)?;
                if let Some(reply) = on_answer(&answer, &mut in_flight, &mut report, &mut lock) {
                    out.write_all(format!("{reply}\n").as_bytes()).await?;
                }
            }
            () = tokio::time::sleep_until(grace) => break,
        }
    }
    Ok(report)
}

/// Books an answer from the server; returns the reply to a command.
fn on_answer(
    answer: &Value,
    in_flight: &mut BTreeMap<u64, Instant>,
    report: &mut Report,
    lock: &mut Lock,
) -> Option<Value> {
    let seq = answer["seq"].as_u64().unwrap_or(0);
    match answer["type"].as_str()? {
        "ack" => {
            let upto = answer["upto"].as_bool().unwrap_or(false);
            let done: Vec<u64> = if upto {
                in_flight.range(..=seq).map(|(s, _)| *s).collect()
            } else {
                vec![seq]
            };
            for s in done {
                if let Some(sent) = in_flight.remove(&s) {
                    report.acked_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
            }
            None
        }
        "nack" => {
            in_flight.remove(&seq);
            report.nacked += 1;
            None
        }
        "command" => {
            report.commands += 1;
            let (success, message) = lock.answer(answer);
            Some(
                json!({"type": "command_result", "request_id": answer["request_id"],
                        "success": success, "message": message}),
            )
        }
        _ => None,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn print_summary(reports: &[Report], locks: usize, seconds: u64) {
    let mut latencies: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.acked_ms.iter().copied())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let nacked: u64 = reports.iter().map(|r| r.nacked).sum();
    let commands: u64 = reports.iter().map(|r| r.commands).sum();
    println!(
        "{locks} locks for {seconds} s: {sent} events sent ({:.0}/s), {} frames acked, {nacked} nacked, {commands} commands answered",
        sent as f64 / seconds.max(1) as f64,
        latencies.len()
    );
    println!(
        "ack latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0)
    );
}

/// The server and the locks to simulate, per the flags.
async fn fleet(
    args: &Args,
) -> anyhow::Result<(Option<Embedded>, SocketAddr, Vec<(String, String)>)> {
    if !args.devices.is_empty() {
        let tcp = args.tcp.context("--device needs --tcp")?;
        return Ok((None, tcp, args.devices.clone()));
    }
    if args.register {
        let url = args.http.as_deref().unwrap_or("http://127.0.0.1:8080");
        let email = std::env::var("HSE_ROOT_EMAIL").unwrap_or_else(|_| ROOT.into());
        let password =
            std::env::var("HSE_ROOT_PASSWORD").context("--register needs HSE_ROOT_PASSWORD")?;
        let root = Api::new(url).login(&email, &password).await?;
        let tcp = args
            .tcp
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7700)));
        return Ok((None, tcp, register_locks(&root, args.count).await?));
    }
    println!("no --tcp/--register: starting an in-memory server in this process");
    let server = Embedded::start().await?;
    println!(
        "follow its changes with: cargo run --example subscribe -- --grpc http://{}",
        server.grpc
    );
    let locks = register_locks(&server.root().await?, args.count).await?;
    let tcp = server.device_tcp;
    Ok((Some(server), tcp, locks))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = std::sync::Arc::new(parse_args()?);
    let tls = match &args.tls_ca {
        Some(ca) => Some(Arc::new(DeviceTls::new(ca, &args.tls_name)?)),
        None => None,
    };
    let (server, tcp, locks) = fleet(&args).await?;
    let first = locks
        .first()
        .map(|(id, _)| id.clone())
        .context("no locks")?;
    println!(
        "{} locks → {tcp}, {} events/s each",
        locks.len(),
        args.rate * args.batch as f64
    );
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let running: Vec<_> = locks
        .into_iter()
        .map(|(id, secret)| {
            let args = args.clone();
            let tls = tls.clone();
            tokio::spawn(async move { run_lock(tcp, tls, id, secret, &args, until).await })
        })
        .collect();
    let mut reports = Vec::new();
    for lock in running {
        match lock.await? {
            Ok(report) => reports.push(report),
            Err(e) => eprintln!("a lock failed: {e:#}"),
        }
    }
    print_summary(&reports, reports.len(), args.seconds);
    if let Some(server) = server {
        let status = server
            .root()
            .await?
            .get(&format!("/v1/devices/{first}/status"))
            .await?;
        println!("first lock as the API sees it now: {status}");
        server.stop().await?;
    }
    Ok(())
}
