//! One soak run: services, proxies, supervised processes (the server
//! nodes and the standalone writer), tenants, load, the fault schedule
//! with a recovery bound after each fault, the drain, and the checkers.
//! Devices are split across the nodes (device `i` on node `i mod nodes`),
//! and so is the API traffic (tenant `t` through node `t mod nodes`).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Options;
use crate::checks;
use crate::crossnode::{self, Route};
use crate::load::{self, DeviceOutcome, Firmware};
use crate::node::{self, Node, Stores, env, wait_all_ready};
use crate::proxy::Proxy;
use crate::report::{FaultRecord, Report};
use crate::schedule::{Fault, Link, Step, schedule, spread};
use crate::services::{Postgres, Redis, signal};
use crate::supervisor::Supervised;
use crate::tenants::{self, Tenant};
use crate::traffic::{self, TrafficOutcome};

/// Readiness must come back within this after a fault ends.
pub(crate) const RECOVERY_BOUND: Duration = Duration::from_secs(60);
/// Frames per second per device (10 events each).
const FRAMES_PER_S: f64 = 2.0;
/// How long devices get to have everything acknowledged at the end.
const ACK_DRAIN: Duration = Duration::from_secs(90);
/// How long the writers get to store everything acknowledged.
const STORE_DRAIN: Duration = Duration::from_secs(90);

/// A guarantee the soak removes to show its checker fails without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sabotage {
    /// Drop the idempotency keys: `device_event_ids`' primary key
    /// `(device_id, event_id)` where it exists, and `device_events'`.
    Idempotency,
    /// Drop the bookings' exclusion constraint.
    Exclusion,
    /// Drop the door codes' exclusion constraint.
    Codes,
}

impl Sabotage {
    /// `idempotency`, `exclusion` or `codes`.
    pub(crate) fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "idempotency" => Ok(Self::Idempotency),
            "exclusion" => Ok(Self::Exclusion),
            "codes" => Ok(Self::Codes),
            other => anyhow::bail!("--sabotage `{other}`: use idempotency, exclusion or codes"),
        }
    }

    /// The statement that removes the guarantee.
    fn statement(self) -> &'static str {
        match self {
            Self::Idempotency => {
                "ALTER TABLE IF EXISTS device_event_ids DROP CONSTRAINT IF EXISTS device_event_ids_pkey;
                 ALTER TABLE device_events DROP CONSTRAINT device_events_pkey"
            }
            Self::Exclusion => "ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap",
            Self::Codes => "ALTER TABLE door_codes DROP CONSTRAINT door_codes_unique_per_lock",
        }
    }
}

/// Everything the faults act on.
struct Rig {
    pg: Postgres,
    redis: Redis,
    pg_proxy: Proxy,
    redis_proxy: Proxy,
    nodes: Vec<Node>,
    writer: Supervised,
}

impl Rig {
    /// The node `i`-th things (devices, tenants) go through.
    fn node(&self, i: usize) -> &Node {
        &self.nodes[i % self.nodes.len()]
    }
}

/// Runs the soak of `options` and returns its report.
pub(crate) async fn run(options: &Options) -> anyhow::Result<Report> {
    let steps = print_schedule(options);
    let dir =
        std::env::temp_dir().join(format!("hse-soak-{}-{}", options.seed, std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!("soak: run directory {}", dir.display());
    let rig = start(options, &dir).await?;
    let result = exercise(options, &rig, &steps).await;
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            stop(rig).await;
            eprintln!("soak: logs kept in {}", dir.display());
            return Err(e);
        }
    };
    stop(rig).await;
    if report.passed() && !options.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("soak: logs and data kept in {}", dir.display());
    }
    Ok(report)
}

/// Prints the seed and its schedule; returns the schedule.
pub(crate) fn print_schedule(options: &Options) -> Vec<Step> {
    let steps = spread(schedule(options.seed, options.minutes), options.nodes);
    let timeless = if options.timeless {
        let clocks = load::clocks(options.seed, DEVICES);
        let without: Vec<String> = (0..DEVICES)
            .filter(|&i| !clocks[i])
            .map(|i| (i + 1).to_string())
            .collect();
        format!("devices {} send no ts_ms", without.join(", "))
    } else {
        "every device sends ts_ms".into()
    };
    println!(
        "soak: seed {} over {} min, {} server node(s), {DEVICES} devices ({timeless}); schedule ({} faults):",
        options.seed,
        options.minutes,
        options.nodes,
        steps.len()
    );
    for (i, step) in steps.iter().enumerate() {
        println!(
            "  {:>3}. after {:>2}s: {}",
            i + 1,
            step.pause.as_secs(),
            step.fault
        );
    }
    steps
}

async fn start(options: &Options, dir: &Path) -> anyhow::Result<Rig> {
    let pg = Postgres::start(dir).await?;
    let mut admin = PgConnection::connect(&pg.url("postgres")).await?;
    sqlx::raw_sql("CREATE DATABASE hse")
        .execute(&mut admin)
        .await?;
    sqlx::raw_sql(APP_ROLE).execute(&mut admin).await?;
    drop(admin);
    let redis = Redis::start(dir).await?;
    let pg_proxy = Proxy::start(pg.addr()).await?;
    let redis_proxy = Proxy::start(redis.addr()).await?;
    let owner_url = format!("postgres://postgres@{}/hse", pg_proxy.addr());
    let database_url = if knows(&options.server, MIGRATION_URL)? {
        format!("postgres://hse_app@{}/hse", pg_proxy.addr())
    } else {
        owner_url.clone()
    };
    let redis_url = format!("redis://{}", redis_proxy.addr());
    let stores = Stores {
        database_url: database_url.clone(),
        owner_url: owner_url.clone(),
        redis_url: redis_url.clone(),
    };
    let nodes = node::start(&options.server, options.nodes, &stores, dir).await?;
    let writer_env = vec![
        env("HSE_DATABASE_URL", database_url),
        env(MIGRATION_URL, owner_url),
        env("HSE_REDIS_URL", redis_url),
        env("HSE_WRITER_NAME", "soak-writer".into()),
    ];
    let writer = Supervised::start(
        "writer",
        options.writer.clone(),
        Vec::new(),
        writer_env,
        dir,
    );
    Ok(Rig {
        pg,
        redis,
        pg_proxy,
        redis_proxy,
        nodes,
        writer,
    })
}

/// Devices of the two tenants (a lock and four sensors each).
const DEVICES: usize = 10;

/// The variable of the schema owner's URL (row-level security: the server
/// connects as an application role that owns nothing and migrates as the
/// owner).
const MIGRATION_URL: &str = "HSE_DATABASE_MIGRATION_URL";

/// The application role, made as `scripts/services` makes it: a login role
/// with neither SUPERUSER nor BYPASSRLS, privileged through the group the
/// migrations grant to.
const APP_ROLE: &str = "CREATE ROLE hse_app_group NOLOGIN NOSUPERUSER NOBYPASSRLS;
    CREATE ROLE hse_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    GRANT hse_app_group TO hse_app;";

/// Whether the `binary` reads the variable `name` (its name is among the
/// binary's strings): a server that takes a migration URL connects as the
/// application role, an older one as the owner.
fn knows(binary: &Path, name: &str) -> anyhow::Result<bool> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    Ok(bytes.windows(name.len()).any(|w| w == name.as_bytes()))
}

/// Tenants, load, traffic, faults, drain, checks.
async fn exercise(options: &Options, rig: &Rig, steps: &[Step]) -> anyhow::Result<Report> {
    if let Some(sabotage) = options.sabotage {
        println!(
            "soak: SABOTAGE (negative control): {}",
            sabotage.statement()
        );
        let mut conn = PgConnection::connect(&rig.pg.url("hse")).await?;
        sqlx::raw_sql(sabotage.statement())
            .execute(&mut conn)
            .await?;
    }
    let tenants = tenants::set_up(&rig.node(0).api).await?;
    let stop = CancellationToken::new();
    let drain = CancellationToken::new();
    let logins: Vec<_> = tenants.iter().flat_map(|t| t.devices.clone()).collect();
    let clocks = if options.timeless {
        load::clocks(options.seed, logins.len())
    } else {
        vec![true; logins.len()]
    };
    let mut devices = Vec::new();
    for (i, login) in logins.into_iter().enumerate() {
        let firmware = Firmware {
            frames_per_s: FRAMES_PER_S,
            timed: clocks[i],
        };
        devices.push(tokio::spawn(load::run_device(
            rig.node(i).device_proxy.addr(),
            login,
            firmware,
            stop.clone(),
            drain.clone(),
        )));
    }
    let traffic: Vec<_> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let api = rig.node(i).api.clone();
            tokio::spawn(traffic::run(
                api.clone(),
                t.through(&api),
                options.seed ^ (i as u64 + 1),
                stop.clone(),
            ))
        })
        .collect();
    let routes = routes(rig, &tenants);
    let mut probes = 0;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.minutes * 60.0);
    let mut faults = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        tokio::time::sleep(step.pause).await;
        let at = started.elapsed();
        println!(
            "soak: [{:>6.1}s] fault {}/{}: {}",
            at.as_secs_f64(),
            i + 1,
            steps.len(),
            step.fault
        );
        let mut record = inject(rig, step.fault, at).await;
        if step.fault == Fault::RestartRedisCrossNode && record.recovery.is_some() {
            record.cross_node = Some(crossnode::probe(&routes, probes).await);
            probes += 1;
        }
        println!(
            "soak: [{:>6.1}s]   {}",
            started.elapsed().as_secs_f64(),
            record.outcome()
        );
        faults.push(record);
    }
    tokio::time::sleep_until(deadline).await;
    println!(
        "soak: [{:>6.1}s] load stops; draining",
        started.elapsed().as_secs_f64()
    );
    stop.cancel();
    let mut traffic_outcomes = Vec::new();
    for t in traffic {
        traffic_outcomes.push(t.await?);
    }
    let drain_timer = {
        let drain = drain.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ACK_DRAIN).await;
            drain.cancel();
        })
    };
    let mut device_outcomes = Vec::new();
    for d in devices {
        device_outcomes.push(d.await?);
    }
    drain_timer.abort();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&rig.pg.url("hse"))
        .await?;
    let store_wait = wait_stored(&pool, &device_outcomes).await?;
    let report = check(
        options,
        rig,
        &pool,
        &tenants,
        Outcomes {
            faults,
            devices: device_outcomes,
            traffic: traffic_outcomes,
            store_wait,
        },
    )
    .await?;
    pool.close().await;
    Ok(report)
}

/// What the run produced, for the checkers.
struct Outcomes {
    faults: Vec<FaultRecord>,
    devices: Vec<DeviceOutcome>,
    traffic: Vec<TrafficOutcome>,
    store_wait: Duration,
}

/// Waits until every acknowledged event is stored (or the drain ends).
async fn wait_stored(pool: &PgPool, devices: &[DeviceOutcome]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < STORE_DRAIN {
        if checks::unstored(pool, devices).await? == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(started.elapsed())
}

/// For each tenant: its lock's node, and the other node to ask (none with
/// one node).
fn routes(rig: &Rig, tenants: &[Tenant; 2]) -> Vec<Route> {
    if rig.nodes.len() < 2 {
        return Vec::new();
    }
    let mut first = 0;
    tenants
        .iter()
        .map(|tenant| {
            let lock_node = first % rig.nodes.len();
            first += tenant.devices.len();
            let via = (lock_node + 1) % rig.nodes.len();
            Route {
                tenant: tenant.clone(),
                lock_node,
                via,
                api: rig.nodes[via].api.clone(),
            }
        })
        .collect()
}

/// Injects `fault`, lifts it, and measures how long readiness takes to
/// come back on every node.
async fn inject(rig: &Rig, fault: Fault, at: Duration) -> FaultRecord {
    let server_starts: Vec<u64> = rig.nodes.iter().map(|n| n.server.starts()).collect();
    let writer_starts = rig.writer.starts();
    let injected = apply(rig, fault).await;
    let mut record = FaultRecord {
        fault,
        at,
        injected: injected.err().map(|e| format!("{e:#}")),
        recovery: None,
        restarted: true,
        cross_node: None,
    };
    let recovered = wait_all_ready(&rig.nodes, RECOVERY_BOUND).await;
    record.recovery = recovered.ok();
    record.restarted = match fault {
        Fault::KillServer(i) => {
            rig.node(i).server.starts() > server_starts[i % server_starts.len()]
        }
        Fault::KillWriter => {
            let deadline = Instant::now() + RECOVERY_BOUND;
            while rig.writer.starts() == writer_starts && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            rig.writer.starts() > writer_starts
        }
        _ => true,
    };
    record
}

/// Puts the fault in force for its duration, then lifts it.
async fn apply(rig: &Rig, fault: Fault) -> anyhow::Result<()> {
    match fault {
        Fault::KillServer(i) => rig.node(i).server.kill().await,
        Fault::KillWriter => rig.writer.kill().await,
        Fault::PausePostgres(d) => {
            let pids = rig.pg.pids();
            signal("STOP", &pids).await?;
            tokio::time::sleep(d).await;
            signal("CONT", &pids).await
        }
        Fault::PauseRedis(d) => {
            let pids: Vec<u32> = rig.redis.pid().into_iter().collect();
            signal("STOP", &pids).await?;
            tokio::time::sleep(d).await;
            signal("CONT", &pids).await
        }
        Fault::RestartPostgres => {
            rig.pg.crash().await?;
            rig.pg.start_again().await
        }
        Fault::RestartRedis | Fault::RestartRedisCrossNode => restart_redis(rig).await,
        Fault::Latency(link, delay, d) => {
            let proxies = proxies(rig, link);
            proxies.iter().for_each(|p| p.set_latency(delay));
            tokio::time::sleep(d).await;
            proxies.iter().for_each(|p| p.set_latency(Duration::ZERO));
            Ok(())
        }
        Fault::Cut(link) => {
            proxies(rig, link).iter().for_each(|p| p.cut());
            Ok(())
        }
    }
}

/// Crashes Redis and starts it again on the same port and directory.
async fn restart_redis(rig: &Rig) -> anyhow::Result<()> {
    rig.redis.crash().await?;
    rig.redis.start_again().await
}

/// The proxies on `link` (every node's device proxy for the devices).
fn proxies(rig: &Rig, link: Link) -> Vec<&Proxy> {
    match link {
        Link::Postgres => vec![&rig.pg_proxy],
        Link::Redis => vec![&rig.redis_proxy],
        Link::Devices => rig.nodes.iter().map(|n| &n.device_proxy).collect(),
    }
}

/// Runs the checkers and assembles the report.
async fn check(
    options: &Options,
    rig: &Rig,
    pool: &PgPool,
    tenants: &[Tenant; 2],
    outcomes: Outcomes,
) -> anyhow::Result<Report> {
    let events = checks::events(pool, &outcomes.devices).await?;
    let mut verdicts = vec![checks::Verdict {
        name: "every acknowledged event stored exactly once",
        passed: events.holds() && events.acked > 0,
        detail: events.detail(),
    }];
    verdicts.push(checks::bookings(pool).await?);
    verdicts.push(checks::door_codes(pool).await?);
    verdicts.push(isolation(pool, tenants, &outcomes).await?);
    let unrecovered: Vec<String> = outcomes
        .faults
        .iter()
        .filter(|f| !f.recovered())
        .map(FaultRecord::outcome)
        .collect();
    let slowest = outcomes
        .faults
        .iter()
        .filter_map(|f| f.recovery)
        .max()
        .unwrap_or_default();
    verdicts.push(checks::Verdict {
        name: "recovered after every fault, no manual step",
        passed: unrecovered.is_empty(),
        detail: if unrecovered.is_empty() {
            format!(
                "{} faults, slowest readiness {:.1}s (bound {}s)",
                outcomes.faults.len(),
                slowest.as_secs_f64(),
                RECOVERY_BOUND.as_secs()
            )
        } else {
            unrecovered.join("; ")
        },
    });
    Ok(Report {
        seed: options.seed,
        sabotage: options.sabotage,
        minutes: options.minutes,
        faults: outcomes.faults,
        events,
        devices: outcomes.devices,
        traffic: outcomes.traffic,
        verdicts,
        store_wait: outcomes.store_wait,
        server_starts: rig
            .nodes
            .iter()
            .map(|n| (n.name, n.server.starts()))
            .collect(),
        writer_starts: rig.writer.starts(),
    })
}

/// No answer to one tenant carried another tenant's id or organization.
async fn isolation(
    pool: &PgPool,
    tenants: &[Tenant; 2],
    outcomes: &Outcomes,
) -> anyhow::Result<checks::Verdict> {
    let owners = checks::owners(pool).await?;
    let events_of = |tenant: &Tenant| -> HashSet<String> {
        let ids: HashSet<String> = tenant.devices.iter().map(|d| d.id.clone()).collect();
        outcomes
            .devices
            .iter()
            .filter(|d| ids.contains(&d.device.to_string()))
            .flat_map(|d| d.acked.iter().map(ToString::to_string))
            .collect()
    };
    let mut problems = Vec::new();
    let mut seen = 0;
    let mut reads = 0;
    for (i, (tenant, traffic)) in tenants.iter().zip(&outcomes.traffic).enumerate() {
        let other = &tenants[1 - i];
        let foreign = checks::foreign_ids(
            &traffic.seen,
            &tenant.organization,
            &owners,
            &events_of(other),
        );
        seen += traffic.seen.len();
        reads += traffic.reads.get(&200).copied().unwrap_or(0);
        problems.extend(foreign.iter().map(|id| format!("{} saw {id}", tenant.name)));
        problems.extend(traffic.foreign_organization.iter().cloned());
    }
    Ok(checks::Verdict {
        name: "no answer carried another tenant's data",
        passed: problems.is_empty() && reads > 0,
        detail: if problems.is_empty() {
            format!("{reads} reads answered 200, {seen} distinct ids checked")
        } else {
            problems.truncate(10);
            problems.join("; ")
        },
    })
}

/// Stops everything the rig started.
async fn stop(rig: Rig) {
    rig.writer.stop().await;
    for node in rig.nodes {
        node.server.stop().await;
    }
    let _ = rig.pg.stop().await;
    let _ = rig.redis.crash().await;
}
