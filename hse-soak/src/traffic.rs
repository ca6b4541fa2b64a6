//! Booking traffic and API reads, as each tenant's admin.
//!
//! Bookings go to few rooms over few nights so they collide (the server
//! must refuse every overlap with 409 whatever faults are in force); most
//! are confirmed, which issues a 4-digit door code on the building's lock,
//! and some are cancelled. Reads walk the tenant's lists and its devices'
//! events; every id in every answer is recorded with the tenant that got
//! it, for the isolation checker.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::http::Api;
use crate::schedule::Rng;
use crate::tenants::Tenant;

/// Nights bookings are spread over (few, so they collide).
const NIGHTS: i64 = 20;

/// What one tenant's traffic came to.
#[derive(Debug, Default)]
pub(crate) struct TrafficOutcome {
    /// Booking answers by status (`0`: no answer).
    pub(crate) bookings: BTreeMap<u16, u64>,
    /// Confirm and cancel answers by status.
    pub(crate) transitions: BTreeMap<u16, u64>,
    /// Read answers by status.
    pub(crate) reads: BTreeMap<u16, u64>,
    /// Every id seen in a read answer.
    pub(crate) seen: HashSet<String>,
    /// Answers carrying an `organization_id` other than the tenant's.
    pub(crate) foreign_organization: Vec<String>,
}

/// Shared between the two loops of a tenant.
type Shared = Arc<Mutex<TrafficOutcome>>;

fn lock(outcome: &Shared) -> std::sync::MutexGuard<'_, TrafficOutcome> {
    outcome.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs bookings and reads for `tenant` until `stop`.
pub(crate) async fn run(
    api: Api,
    tenant: Tenant,
    seed: u64,
    stop: CancellationToken,
) -> TrafficOutcome {
    let shared: Shared = Arc::default();
    let tenant = Arc::new(tokio::sync::RwLock::new(tenant));
    let bookings = tokio::spawn(book(
        api.clone(),
        tenant.clone(),
        Rng::new(seed),
        shared.clone(),
        stop.clone(),
    ));
    let reads = tokio::spawn(read(api, tenant, shared.clone(), stop));
    let _ = tokio::join!(bookings, reads);
    std::mem::take(&mut *lock(&shared))
}

/// A call as the tenant's admin, signing in again once on a 401 (tokens
/// expire during a long run). `(0, Null)` when there was no answer.
async fn call(
    api: &Api,
    tenant: &tokio::sync::RwLock<Tenant>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let admin = tenant.read().await.admin.clone();
    match admin.send(method.clone(), path, body).await {
        Ok((StatusCode::UNAUTHORIZED, _)) => {
            let again = tenant.write().await.sign_in_again(api).await;
            if again.is_err() {
                return (401, Value::Null);
            }
            let admin = tenant.read().await.admin.clone();
            numbered(admin.send(method, path, body).await)
        }
        answer => numbered(answer),
    }
}

/// The status as a number and the body; `(0, Null)` for no answer.
fn numbered(answer: anyhow::Result<(StatusCode, Value)>) -> (u16, Value) {
    answer.map_or((0, Value::Null), |(status, body)| (status.as_u16(), body))
}

async fn book(
    api: Api,
    tenant: Arc<tokio::sync::RwLock<Tenant>>,
    mut rng: Rng,
    outcome: Shared,
    stop: CancellationToken,
) {
    let base = (Utc::now() + TimeDelta::days(30))
        .duration_trunc(TimeDelta::days(1))
        .unwrap_or_else(|_| Utc::now());
    let (rooms, guests) = {
        let t = tenant.read().await;
        (t.rooms.clone(), t.guests.clone())
    };
    while !stop.is_cancelled() {
        let night = i64::try_from(rng.between(0, NIGHTS as u64 - 1)).unwrap_or(0);
        let length = i64::try_from(rng.between(1, 3)).unwrap_or(1);
        let check_in = base + TimeDelta::days(night) + TimeDelta::hours(14);
        let check_out = base + TimeDelta::days(night + length) + TimeDelta::hours(10);
        let body = json!({
            "area_id": rooms[rng.below(rooms.len())],
            "guest_id": guests[rng.below(guests.len())],
            "stay": {"check_in": check_in.to_rfc3339(), "check_out": check_out.to_rfc3339()},
        });
        let (status, answer) = call(&api, &tenant, Method::POST, "/v1/bookings", Some(&body)).await;
        *lock(&outcome).bookings.entry(status).or_default() += 1;
        if status == 201
            && let Some(id) = answer["id"].as_str()
        {
            let action = match rng.below(10) {
                0 => Some("cancel"),
                1 | 2 => None,
                _ => Some("confirm"),
            };
            if let Some(action) = action {
                let body = json!({"reason": "soak"});
                let path = format!("/v1/bookings/{id}/{action}");
                let (status, _) = call(&api, &tenant, Method::POST, &path, Some(&body)).await;
                *lock(&outcome).transitions.entry(status).or_default() += 1;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(rng.between(100, 300))) => {}
            () = stop.cancelled() => {}
        }
    }
}

async fn read(
    api: Api,
    tenant: Arc<tokio::sync::RwLock<Tenant>>,
    outcome: Shared,
    stop: CancellationToken,
) {
    let (organization, devices) = {
        let t = tenant.read().await;
        let devices: Vec<String> = t.devices.iter().map(|d| d.id.clone()).collect();
        (t.organization.clone(), devices)
    };
    let mut paths = vec![
        "/v1/organizations".to_owned(),
        "/v1/establishments".to_owned(),
        "/v1/areas?limit=500".to_owned(),
        "/v1/devices?limit=500".to_owned(),
        "/v1/guests?limit=500".to_owned(),
        "/v1/bookings?limit=500".to_owned(),
    ];
    for d in &devices {
        paths.push(format!("/v1/devices/{d}/events?limit=100"));
        paths.push(format!("/v1/devices/{d}/status"));
    }
    let mut turn = 0usize;
    while !stop.is_cancelled() {
        let path = &paths[turn % paths.len()];
        turn += 1;
        let (status, answer) = call(&api, &tenant, Method::GET, path, None).await;
        if let Some(codes) = record(&outcome, status, &answer, &organization, path) {
            paths.push(codes);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(80)) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// Records a read's answer; a booking's codes route to read later, now
/// and then.
fn record(
    outcome: &Shared,
    status: u16,
    answer: &Value,
    organization: &str,
    path: &str,
) -> Option<String> {
    let mut out = lock(outcome);
    *out.reads.entry(status).or_default() += 1;
    if status != 200 {
        return None;
    }
    collect(answer, organization, path, &mut out);
    let booking = answer["items"].as_array()?.first()?["id"].as_str()?;
    (path.starts_with("/v1/bookings?") && out.reads.get(&200).is_some_and(|n| n.is_multiple_of(7)))
        .then(|| format!("/v1/bookings/{booking}/doorlock-codes"))
}

/// Records every `id`/`*_id` string in `value`, and any `organization_id`
/// that is not `organization`.
fn collect(value: &Value, organization: &str, path: &str, out: &mut TrafficOutcome) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if let Value::String(s) = v {
                    if key == "organization_id" && s != organization {
                        out.foreign_organization.push(format!("{path}: {s}"));
                    }
                    if key == "id" || key.ends_with("_id") {
                        out.seen.insert(s.clone());
                    }
                } else {
                    collect(v, organization, path, out);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                collect(v, organization, path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_collected_and_foreign_organizations_flagged() {
        let mut out = TrafficOutcome::default();
        let answer = json!({"items": [
            {"id": "b1", "organization_id": "A", "guest": {"id": "g1"}},
            {"id": "b2", "organization_id": "B"},
        ], "next_cursor": null});
        collect(&answer, "A", "/v1/bookings", &mut out);
        for id in ["b1", "b2", "g1", "A", "B"] {
            assert!(out.seen.contains(id), "{id}");
        }
        assert_eq!(out.foreign_organization, vec!["/v1/bookings: B"]);
    }
}
