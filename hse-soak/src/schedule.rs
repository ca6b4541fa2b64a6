//! The fault schedule: a sequence of (pause, fault) drawn from the seed
//! alone, so a failing seed replays the same faults in the same order with
//! the same pauses and parameters. With two server nodes ([`spread`]) the
//! server kills alternate between the nodes (first A, then B, …) and every
//! Redis restart is followed by cross-node commands; the draw itself does
//! not change, so a seed's pauses and fault kinds are those of a one-node
//! run.

use std::fmt;
use std::time::Duration;

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same sequence on every machine and every version of every crate.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }
}

/// Where a proxy sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Link {
    /// Between the server (and writer) and PostgreSQL.
    Postgres,
    /// Between the server (and writer) and Redis.
    Redis,
    /// Between the devices and the server's device listener.
    Devices,
}

impl Link {
    /// Every link.
    pub(crate) const ALL: [Self; 3] = [Self::Postgres, Self::Redis, Self::Devices];

    /// Its name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Devices => "devices",
        }
    }
}

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// SIGKILL one whole server node (every role): 0 is node A, 1 node B.
    KillServer(usize),
    /// SIGKILL the standalone batch writer (`hse-devices-writer`).
    KillWriter,
    /// SIGSTOP every PostgreSQL process, SIGCONT after the duration.
    PausePostgres(Duration),
    /// SIGSTOP Redis, SIGCONT after the duration.
    PauseRedis(Duration),
    /// Crash-restart PostgreSQL (`pg_ctl stop -m immediate`, then start).
    RestartPostgres,
    /// Crash-restart Redis (SIGKILL, then start; the AOF is replayed).
    RestartRedis,
    /// Crash-restart Redis, then, once every node is ready, commands and a
    /// door code through one node's API to locks connected to the other:
    /// each must be answered (acknowledged) within a bound.
    RestartRedisCrossNode,
    /// Delay every chunk through a proxy for the duration.
    Latency(Link, Duration, Duration),
    /// Close every connection through a proxy at once.
    Cut(Link),
}

impl Fault {
    /// Its kind, for the result table.
    pub(crate) fn kind(self) -> String {
        match self {
            Self::KillServer(node) => format!("kill -9 server {}", node_name(node)),
            Self::KillWriter => "kill -9 batch writer".into(),
            Self::PausePostgres(_) => "SIGSTOP postgres".into(),
            Self::PauseRedis(_) => "SIGSTOP redis".into(),
            Self::RestartPostgres => "restart postgres".into(),
            Self::RestartRedis => "restart redis".into(),
            Self::RestartRedisCrossNode => "restart redis, then cross-node commands".into(),
            Self::Latency(link, _, _) => format!("latency {}", link.name()),
            Self::Cut(link) => format!("cut {}", link.name()),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PausePostgres(d) | Self::PauseRedis(d) => {
                write!(f, "{} for {}s", self.kind(), d.as_secs())
            }
            Self::Latency(_, delay, d) => write!(
                f,
                "{} +{}ms for {}s",
                self.kind(),
                delay.as_millis(),
                d.as_secs()
            ),
            _ => f.write_str(&self.kind()),
        }
    }
}

/// One step: wait `pause`, then inject `fault`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    /// Quiet time before the fault.
    pub(crate) pause: Duration,
    /// The fault.
    pub(crate) fault: Fault,
}

/// How long a SIGSTOP lasts (the 5 s).
const PAUSE: Duration = Duration::from_secs(5);

/// The schedule for `seed` over `minutes`: pauses of 10–60 s on a long run,
/// scaled down (to 3–18 s at most) on a short one, until the faults and
/// pauses fill the run less a quiet tail.
pub(crate) fn schedule(seed: u64, minutes: f64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let total = minutes * 60.0;
    let scale = (minutes / 30.0).clamp(0.3, 1.0);
    let (lo, hi) = ((10.0 * scale) as u64, (60.0 * scale) as u64);
    let tail = (total * 0.1).max(10.0);
    let mut at = 0.0;
    let mut steps = Vec::new();
    loop {
        let pause = Duration::from_secs(rng.between(lo, hi));
        let fault = draw(&mut rng);
        at += pause.as_secs_f64() + busy(fault).as_secs_f64();
        if at > total - tail {
            return steps;
        }
        steps.push(Step { pause, fault });
    }
}

/// One fault, uniformly over the kinds.
fn draw(rng: &mut Rng) -> Fault {
    let link = Link::ALL[rng.below(Link::ALL.len())];
    match rng.below(8) {
        0 => Fault::KillServer(0),
        1 => Fault::KillWriter,
        2 => Fault::PausePostgres(PAUSE),
        3 => Fault::PauseRedis(PAUSE),
        4 => Fault::RestartPostgres,
        5 => Fault::RestartRedis,
        6 => Fault::Latency(
            link,
            Duration::from_millis(rng.between(50, 400)),
            Duration::from_secs(rng.between(3, 8)),
        ),
        _ => Fault::Cut(link),
    }
}

/// The schedule for `nodes` server nodes: with two or more, the `n`-th
/// server kill hits node `n mod nodes` and every Redis restart becomes
/// [`Fault::RestartRedisCrossNode`]. One node: unchanged.
pub(crate) fn spread(steps: Vec<Step>, nodes: usize) -> Vec<Step> {
    if nodes < 2 {
        return steps;
    }
    let mut kills = 0;
    steps
        .into_iter()
        .map(|step| {
            let fault = match step.fault {
                Fault::KillServer(_) => {
                    kills += 1;
                    Fault::KillServer((kills - 1) % nodes)
                }
                Fault::RestartRedis => Fault::RestartRedisCrossNode,
                other => other,
            };
            Step { fault, ..step }
        })
        .collect()
}

/// A node's letter: 0 is `A`, 1 is `B`.
pub(crate) fn node_name(node: usize) -> char {
    char::from(b'A' + u8::try_from(node % 26).unwrap_or(0))
}

/// How long a fault holds (before recovery is awaited).
pub(crate) fn busy(fault: Fault) -> Duration {
    match fault {
        Fault::PausePostgres(d) | Fault::PauseRedis(d) | Fault::Latency(_, _, d) => d,
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_schedule() {
        let a: Vec<String> = schedule(7, 30.0)
            .iter()
            .map(|s| format!("{:?}", (s.pause, s.fault)))
            .collect();
        let b: Vec<String> = schedule(7, 30.0)
            .iter()
            .map(|s| format!("{:?}", (s.pause, s.fault)))
            .collect();
        assert_eq!(a, b);
        let c: Vec<String> = schedule(8, 30.0)
            .iter()
            .map(|s| format!("{:?}", (s.pause, s.fault)))
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn long_runs_pause_10_to_60_s_and_short_ones_less() {
        let long = schedule(1, 30.0);
        assert!(long.len() > 20, "{}", long.len());
        assert!(long.iter().all(|s| (10..=60).contains(&s.pause.as_secs())));
        let short = schedule(1, 1.5);
        assert!(short.len() >= 3, "{}", short.len());
        assert!(short.iter().all(|s| s.pause.as_secs() <= 18));
    }

    #[test]
    fn two_nodes_alternate_kills_and_probe_after_redis_restarts() {
        let steps = |faults: &[Fault]| -> Vec<Step> {
            faults
                .iter()
                .map(|&fault| Step {
                    pause: Duration::from_secs(1),
                    fault,
                })
                .collect()
        };
        let drawn = steps(&[
            Fault::KillServer(0),
            Fault::RestartRedis,
            Fault::KillServer(0),
            Fault::KillServer(0),
            Fault::KillWriter,
        ]);
        let faults = |s: Vec<Step>| -> Vec<Fault> { s.iter().map(|s| s.fault).collect() };
        assert_eq!(
            faults(spread(drawn.clone(), 2)),
            vec![
                Fault::KillServer(0),
                Fault::RestartRedisCrossNode,
                Fault::KillServer(1),
                Fault::KillServer(0),
                Fault::KillWriter,
            ]
        );
        assert_eq!(faults(spread(drawn.clone(), 1)), faults(drawn));
        assert_eq!(Fault::KillServer(1).kind(), "kill -9 server B");
    }

    #[test]
    fn every_kind_is_drawn() {
        let mut rng = Rng::new(3);
        let kinds: std::collections::BTreeSet<String> =
            (0..500).map(|_| draw(&mut rng).kind()).collect();
        assert_eq!(kinds.len(), 6 + 2 * Link::ALL.len());
    }
}
