//! The result table: faults injected by kind with their recovery (and the
//! cross-node probes after Redis restarts), events acknowledged/stored/
//! duplicated by `(device_id, event_id)`, traffic, and the checkers'
//! verdicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::checks::{EventCounts, Verdict};
use crate::crossnode::Probe;
use crate::load::DeviceOutcome;
use crate::schedule::Fault;
use crate::traffic::TrafficOutcome;

/// One injected fault and what followed.
#[derive(Debug)]
pub(crate) struct FaultRecord {
    /// The fault.
    pub(crate) fault: Fault,
    /// When, from the start of the load.
    pub(crate) at: Duration,
    /// Why it could not be injected, if it could not.
    pub(crate) injected: Option<String>,
    /// From the fault's end to readiness, if within the bound.
    pub(crate) recovery: Option<Duration>,
    /// Whether a killed process was started again by the supervisor.
    pub(crate) restarted: bool,
    /// The cross-node probes after it (Redis restarts with two nodes).
    pub(crate) cross_node: Option<Vec<Probe>>,
}

impl FaultRecord {
    /// Injected, restarted where killed, ready within the bound, and
    /// (after a Redis restart with two nodes) every cross-node probe
    /// answered within its bound.
    pub(crate) fn recovered(&self) -> bool {
        self.injected.is_none()
            && self.restarted
            && self.recovery.is_some()
            && self.cross_node_answered()
    }

    /// Every cross-node probe answered (true when there were none to run).
    fn cross_node_answered(&self) -> bool {
        match (&self.cross_node, self.fault) {
            (Some(probes), _) => probes.iter().all(|p| p.answered.is_some()),
            (None, Fault::RestartRedisCrossNode) => false,
            (None, _) => true,
        }
    }

    /// The slowest cross-node probe, if every one was answered.
    fn slowest_probe(&self) -> Option<Duration> {
        let probes = self.cross_node.as_ref()?;
        probes
            .iter()
            .map(|p| p.answered)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// One line about it.
    pub(crate) fn outcome(&self) -> String {
        match (&self.injected, self.recovery) {
            (Some(e), _) => format!(
                "{} at {:.0}s: not injected: {e}",
                self.fault,
                self.at.as_secs_f64()
            ),
            (None, None) => format!(
                "{} at {:.0}s: NOT ready within {}s",
                self.fault,
                self.at.as_secs_f64(),
                crate::soak::RECOVERY_BOUND.as_secs()
            ),
            (None, Some(r)) if !self.restarted => {
                format!(
                    "{}: ready in {:.1}s but the process was not restarted",
                    self.fault,
                    r.as_secs_f64()
                )
            }
            (None, Some(r)) => {
                let mut line = format!("ready {:.1}s after the fault ended", r.as_secs_f64());
                if let Some(probes) = &self.cross_node {
                    let all: Vec<String> = probes.iter().map(Probe::outcome).collect();
                    let verdict = if self.cross_node_answered() {
                        "cross-node"
                    } else {
                        "cross-node FAILED"
                    };
                    let _ = write!(line, "; {verdict}: {}", all.join("; "));
                }
                line
            }
        }
    }
}

/// A whole run.
#[derive(Debug)]
pub(crate) struct Report {
    /// The seed.
    pub(crate) seed: u64,
    /// The guarantee removed, if any.
    pub(crate) sabotage: Option<crate::soak::Sabotage>,
    /// Minutes of load.
    pub(crate) minutes: f64,
    /// Every fault.
    pub(crate) faults: Vec<FaultRecord>,
    /// The exactly-once counts.
    pub(crate) events: EventCounts,
    /// Per device.
    pub(crate) devices: Vec<DeviceOutcome>,
    /// Per tenant.
    pub(crate) traffic: Vec<TrafficOutcome>,
    /// The checkers.
    pub(crate) verdicts: Vec<Verdict>,
    /// How long the writers took to store the last acknowledged events.
    pub(crate) store_wait: Duration,
    /// Times each server node was started (1 + restarts).
    pub(crate) server_starts: Vec<(char, u64)>,
    /// Times the standalone writer was started.
    pub(crate) writer_starts: u64,
}

impl Report {
    /// Whether every checker passed.
    pub(crate) fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }

    /// The Markdown tables.
    pub(crate) fn table(&self) -> String {
        let mut t = String::new();
        let sabotage = self
            .sabotage
            .map(|s| format!(", sabotaged: {s:?}"))
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "\n## Soak: seed {}, {} min{sabotage}, {}\n",
            self.seed,
            self.minutes,
            if self.passed() { "PASSED" } else { "FAILED" }
        );
        self.faults_table(&mut t);
        self.cross_node_table(&mut t);
        self.events_table(&mut t);
        self.traffic_table(&mut t);
        let _ = writeln!(t, "| checker | result | detail |\n|---|---|---|");
        for v in &self.verdicts {
            let verdict = if v.passed { "pass" } else { "FAIL" };
            let _ = writeln!(t, "| {} | {verdict} | {} |", v.name, v.detail);
        }
        t
    }

    fn faults_table(&self, t: &mut String) {
        let mut by_kind: BTreeMap<String, (u64, u64, Duration)> = BTreeMap::new();
        for f in &self.faults {
            let entry = by_kind.entry(f.fault.kind()).or_default();
            entry.0 += 1;
            if f.recovered() {
                entry.1 += 1;
            }
            entry.2 = entry.2.max(f.recovery.unwrap_or_default());
        }
        let _ = writeln!(
            t,
            "| fault | injected | recovered | slowest readiness after it |\n|---|---|---|---|"
        );
        for (kind, (n, ok, slowest)) in &by_kind {
            let _ = writeln!(
                t,
                "| {kind} | {n} | {ok} | {:.1} s |",
                slowest.as_secs_f64()
            );
        }
        let total_ok = self.faults.iter().filter(|f| f.recovered()).count();
        let servers: Vec<String> = match self.server_starts.as_slice() {
            [(_, n)] => vec![format!("server started {n}×")],
            many => many
                .iter()
                .map(|(name, n)| format!("server {name} started {n}×"))
                .collect(),
        };
        let _ = writeln!(
            t,
            "| **all** | {} | {total_ok} | {}, writer {}× |\n",
            self.faults.len(),
            servers.join(", "),
            self.writer_starts
        );
    }

    /// Each cross-node probe after a Redis restart, answered or not.
    fn cross_node_table(&self, t: &mut String) {
        let probed: Vec<&FaultRecord> = self
            .faults
            .iter()
            .filter(|f| f.fault == Fault::RestartRedisCrossNode)
            .collect();
        if probed.is_empty() {
            return;
        }
        let _ = writeln!(
            t,
            "| after the Redis restart at | probe | answered after readiness |\n|---|---|---|"
        );
        for f in probed {
            let at = format!("{:.0} s", f.at.as_secs_f64());
            let Some(probes) = &f.cross_node else {
                let _ = writeln!(t, "| {at} | not run: not ready | — |");
                continue;
            };
            for p in probes {
                let answered = p.answered.map_or_else(
                    || {
                        format!(
                            "**not within {} s** (last: {})",
                            crate::crossnode::BOUND.as_secs(),
                            p.last
                        )
                    },
                    |d| format!("{:.1} s", d.as_secs_f64()),
                );
                let _ = writeln!(t, "| {at} | {} | {answered} |", p.what);
            }
        }
        let slowest = self
            .faults
            .iter()
            .filter_map(FaultRecord::slowest_probe)
            .max();
        if let Some(slowest) = slowest {
            let _ = writeln!(
                t,
                "| **slowest answered** | | {:.1} s |",
                slowest.as_secs_f64()
            );
        }
        t.push('\n');
    }

    fn events_table(&self, t: &mut String) {
        let e = &self.events;
        let sent: u64 = self.devices.iter().map(|d| d.sent).sum();
        let unacked: u64 = self.devices.iter().map(|d| d.unacked).sum();
        let resent: u64 = self.devices.iter().map(|d| d.resent_frames).sum();
        let connections: u64 = self.devices.iter().map(|d| d.connections).sum();
        let commands: u64 = self.devices.iter().map(|d| d.commands).sum();
        let mut nacks: BTreeMap<&str, u64> = BTreeMap::new();
        for d in &self.devices {
            for (code, n) in &d.nacks {
                *nacks.entry(code).or_default() += n;
            }
        }
        let nacks = if nacks.is_empty() {
            "none".to_owned()
        } else {
            nacks
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let timeless = self.devices.iter().filter(|d| !d.timed).count();
        let _ = writeln!(
            t,
            "| events ({} devices, {timeless} without ts_ms), by (device_id, event_id) | count |\n|---|---|",
            self.devices.len()
        );
        for (what, n) in [
            ("created by the devices", sent),
            ("acknowledged", e.acked),
            ("stored (distinct pairs)", e.stored_pairs),
            ("acknowledged and stored exactly once", e.acked_stored_once),
            ("acknowledged, missing", e.missing),
            ("stored more than once", e.duplicated),
            (
                "  of which from devices without ts_ms",
                e.duplicated_timeless,
            ),
            ("  rows beyond the first", e.extra_rows),
            (
                "stored, ack lost with a connection (allowed)",
                e.stored_unacked,
            ),
            ("rows for the soak's devices", e.stored_rows),
            ("never acknowledged by the end", unacked),
            ("frames sent again", resent),
            ("device connections", connections),
            ("lock commands answered", commands),
        ] {
            let _ = writeln!(t, "| {what} | {n} |");
        }
        let _ = writeln!(
            t,
            "| nacks by code | {nacks} |\n| last acked event stored after the load stopped | {:.1} s |\n",
            self.store_wait.as_secs_f64()
        );
    }

    fn traffic_table(&self, t: &mut String) {
        let fmt = |m: &BTreeMap<u16, u64>| {
            m.iter()
                .map(|(s, n)| {
                    if *s == 0 {
                        format!("no answer {n}")
                    } else {
                        format!("{s}: {n}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            t,
            "| tenant | bookings created (by status) | confirm/cancel | reads |\n|---|---|---|---|"
        );
        for (i, tr) in self.traffic.iter().enumerate() {
            let name = if i == 0 { "A" } else { "B" };
            let _ = writeln!(
                t,
                "| {name} | {} | {} | {} |",
                fmt(&tr.bookings),
                fmt(&tr.transitions),
                fmt(&tr.reads)
            );
        }
        t.push('\n');
    }
}
