//! Cross-node commands, probed after a Redis restart once every node is
//! ready again (issue 14): for each tenant, whose entrance lock is
//! connected to one node, through the *other* node's HTTP API
//!
//! - an `unlock` command must be answered by the lock (`200`, `success`),
//!   not `409 device_offline`, and
//! - a door code for a new confirmed booking must reach `active` (the lock
//!   acknowledged `program_code`),
//!
//! each within [`BOUND`] of readiness. A node that stopped listening on
//! the shared command channel when Redis went away fails both.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use hyper::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http::Api;
use crate::schedule::node_name;
use crate::tenants::Tenant;

/// How long each probe gets from readiness.
pub(crate) const BOUND: Duration = Duration::from_secs(30);
/// Between two tries of a probe.
const RETRY: Duration = Duration::from_millis(500);
/// How long the server waits for the lock on each unlock.
const COMMAND_TIMEOUT_MS: u64 = 5000;
/// Probe bookings start this many days out, after the traffic's calendar
/// (30 days out, 20 nights), so they never collide with it.
const FIRST_DAY: i64 = 120;

/// One probe's outcome.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// What was tried, e.g. `unlock via A, lock on B`.
    pub(crate) what: String,
    /// How long from readiness until it was answered, if within the bound.
    pub(crate) answered: Option<Duration>,
    /// The last refusal or state seen (when not answered at once).
    pub(crate) last: String,
}

impl Probe {
    /// One line about it.
    pub(crate) fn outcome(&self) -> String {
        match self.answered {
            Some(t) => format!("{}: {:.1} s", self.what, t.as_secs_f64()),
            None => format!(
                "{}: NOT within {} s (last: {})",
                self.what,
                BOUND.as_secs(),
                self.last
            ),
        }
    }
}

/// Where a tenant's lock is and whom to ask.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// The tenant.
    pub(crate) tenant: Tenant,
    /// The node its lock is connected to.
    pub(crate) lock_node: usize,
    /// The node whose API is asked.
    pub(crate) via: usize,
    /// That node's API (unauthenticated).
    pub(crate) api: Api,
}

/// Runs every probe for `routes` at once; `round` numbers the probe (its
/// bookings take nights of their own).
pub(crate) async fn probe(routes: &[Route], round: usize) -> Vec<Probe> {
    let started = Instant::now();
    let mut set = JoinSet::new();
    for (i, route) in routes.iter().enumerate() {
        let day = FIRST_DAY + 2 * i64::try_from(round * routes.len() + i).unwrap_or(0);
        let (a, b) = (route.clone(), route.clone());
        set.spawn(async move { (2 * i, unlock(a, started).await) });
        set.spawn(async move { (2 * i + 1, door_code(b, day, started).await) });
    }
    let mut probes: Vec<(usize, Probe)> = set.join_all().await;
    probes.sort_by_key(|(i, _)| *i);
    probes.into_iter().map(|(_, p)| p).collect()
}

fn describe(route: &Route, what: &str) -> String {
    format!(
        "{what} via {}, lock of {} on {}",
        node_name(route.via),
        route.tenant.name,
        node_name(route.lock_node)
    )
}

/// The status and problem code of an answer, for the report.
fn refusal(status: u16, body: &Value) -> String {
    match (status, body["code"].as_str()) {
        (0, _) => "no answer".into(),
        (s, Some(code)) => format!("{s} {code}"),
        (s, None) => s.to_string(),
    }
}

/// The tenant's admin on the route's node, with the token it already
/// holds (the nodes share the signing key and the issuer), signing in
/// again there on a 401 (a token that expired during a long run).
struct Admin<'a> {
    route: &'a Route,
    api: Api,
}

impl<'a> Admin<'a> {
    fn new(route: &'a Route) -> Self {
        Self {
            route,
            api: route.api.with_token(&route.tenant.token),
        }
    }

    /// The status (`0`: no answer) and body.
    async fn send(&mut self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let answer = numbered(self.api.send(method.clone(), path, body).await);
        if answer.0 != 401 {
            return answer;
        }
        match self.route.tenant.admin_on(&self.route.api).await {
            Ok(api) => self.api = api,
            Err(e) => return (401, json!({"code": format!("sign-in again: {e:#}")})),
        }
        numbered(self.api.send(method, path, body).await)
    }
}

fn numbered(answer: anyhow::Result<(hyper::StatusCode, Value)>) -> (u16, Value) {
    answer.map_or((0, Value::Null), |(s, b)| (s.as_u16(), b))
}

/// An `unlock` to the tenant's lock through the other node.
async fn unlock(route: Route, started: Instant) -> Probe {
    let mut probe = Probe {
        what: describe(&route, "unlock"),
        answered: None,
        last: "not tried".into(),
    };
    let lock = route.tenant.devices[0].id.clone();
    let path = format!("/v1/devices/{lock}/commands");
    let body = json!({"command_type": "unlock", "params": {}, "timeout_ms": COMMAND_TIMEOUT_MS});
    let mut admin = Admin::new(&route);
    while started.elapsed() < BOUND {
        let (status, answer) = admin.send(Method::POST, &path, Some(&body)).await;
        if status == 200 && answer["success"].as_bool() == Some(true) {
            probe.answered = Some(started.elapsed());
            return probe;
        }
        probe.last = refusal(status, &answer);
        tokio::time::sleep(RETRY).await;
    }
    probe
}

/// A confirmed booking's door code on the tenant's lock, through the
/// other node, until the lock acknowledged it (`active`).
async fn door_code(route: Route, day: i64, started: Instant) -> Probe {
    let mut probe = Probe {
        what: describe(&route, "door code"),
        answered: None,
        last: "not tried".into(),
    };
    let mut booking: Option<String> = None;
    let mut confirmed = false;
    let mut admin = Admin::new(&route);
    while started.elapsed() < BOUND {
        match (&booking, confirmed) {
            (None, _) => {
                let body = stay(&route, day);
                let (status, answer) = admin.send(Method::POST, "/v1/bookings", Some(&body)).await;
                match answer["id"].as_str().filter(|_| status == 201) {
                    Some(id) => booking = Some(id.to_owned()),
                    None => probe.last = format!("booking: {}", refusal(status, &answer)),
                }
            }
            (Some(id), false) => {
                let path = format!("/v1/bookings/{id}/confirm");
                let body = json!({"reason": "soak cross-node probe"});
                let (status, answer) = admin.send(Method::POST, &path, Some(&body)).await;
                if status == 200 {
                    confirmed = true;
                    continue;
                }
                probe.last = format!("confirm: {}", refusal(status, &answer));
            }
            (Some(id), true) => {
                let path = format!("/v1/bookings/{id}/doorlock-codes");
                let (status, answer) = admin.send(Method::GET, &path, None).await;
                let code = &answer["items"][0];
                if status == 200 && code["state"] == "active" {
                    probe.answered = Some(started.elapsed());
                    return probe;
                }
                probe.last = if status == 200 {
                    format!(
                        "code {} after {} failed attempts",
                        code["state"].as_str().unwrap_or("missing"),
                        code["attempts"]
                    )
                } else {
                    format!("codes: {}", refusal(status, &answer))
                };
            }
        }
        tokio::time::sleep(RETRY).await;
    }
    probe
}

/// A two-night stay in the tenant's first room, `day` days from now.
fn stay(route: &Route, day: i64) -> Value {
    let base = (Utc::now() + TimeDelta::days(day))
        .duration_trunc(TimeDelta::days(1))
        .unwrap_or_else(|_| Utc::now());
    let check_in = base + TimeDelta::hours(14);
    let check_out = base + TimeDelta::days(2) + TimeDelta::hours(10);
    json!({
        "area_id": route.tenant.rooms[0],
        "guest_id": route.tenant.guests[0],
        "stay": {"check_in": check_in.to_rfc3339(), "check_out": check_out.to_rfc3339()},
    })
}
