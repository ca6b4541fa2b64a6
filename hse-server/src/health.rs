//! Health endpoints: liveness says the process serves requests; readiness
//! says what this node can serve now, per role, so a load balancer can
//! hold traffic back from what would fail and only that.
//!
//! Each role needs some of the configured services (an embedded one is
//! always there):
//!
//! | role | needs |
//! |---|---|
//! | `ingest` | Redis (its queue): acknowledged events wait there while PostgreSQL is down |
//! | `api`, `grpc` | PostgreSQL and Redis |
//! | `workers` | PostgreSQL |
//!
//! `GET /health/readiness` answers 200 when every role of the node can be
//! served and 503 otherwise, listing the roles it serves and those it
//! cannot with the service each lacks; `GET /health/readiness/{role}`
//! answers for one role (404 for a role the node does not run), for a load
//! balancer of device traffic that should keep an ingest node while
//! PostgreSQL is down.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::backends::Check;
use crate::config::Roles;
use crate::state::AppState;

/// A role this node cannot serve now, and why.
#[derive(Debug, Serialize)]
pub struct Unavailable {
    /// The role.
    pub role: &'static str,
    /// The services it needs that are down.
    pub needs: Vec<&'static str>,
}

/// The readiness report.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// PostgreSQL's state.
    pub postgres: Check,
    /// Redis's state.
    pub redis: Check,
    /// The roles this node can serve now.
    pub serving: Vec<&'static str>,
    /// The roles it runs but cannot serve now.
    pub unavailable: Vec<Unavailable>,
}

/// The services `role` needs: PostgreSQL, Redis.
fn needs(role: &str) -> (bool, bool) {
    match role {
        "ingest" => (false, true),
        "workers" => (true, false),
        _ => (true, true),
    }
}

/// The roles `roles` switches on, by name.
fn names(roles: Roles) -> Vec<&'static str> {
    [
        ("api", roles.api),
        ("grpc", roles.grpc),
        ("ingest", roles.ingest),
        ("workers", roles.workers),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// What can be served of `roles` with the services in these states.
fn report(roles: &[&'static str], postgres: Check, redis: Check) -> Readiness {
    let (mut serving, mut unavailable) = (Vec::new(), Vec::new());
    for &role in roles {
        let (pg, rd) = needs(role);
        let mut lacking = Vec::new();
        if pg && postgres == Check::Down {
            lacking.push("postgres");
        }
        if rd && redis == Check::Down {
            lacking.push("redis");
        }
        if lacking.is_empty() {
            serving.push(role);
        } else {
            unavailable.push(Unavailable {
                role,
                needs: lacking,
            });
        }
    }
    Readiness {
        status: if unavailable.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        postgres,
        redis,
        serving,
        unavailable,
    }
}

async fn checked(state: &AppState, roles: &[&'static str]) -> (StatusCode, Json<Readiness>) {
    let backends = &state.backends;
    let (postgres, redis) = tokio::join!(backends.check_postgres(), backends.check_redis());
    let report = report(roles, postgres, redis);
    let status = if report.unavailable.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// `GET /health/liveness`: 200 while the process serves requests.
pub async fn liveness() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

/// `GET /health/readiness`: 200 when every role of this node can be
/// served, 503 otherwise.
pub async fn readiness(state: State<AppState>, roles: Roles) -> (StatusCode, Json<Readiness>) {
    checked(&state, &names(roles)).await
}

/// `GET /health/readiness/{role}`: 200 when this node can serve `role`
/// now, 503 when it cannot, 404 when it does not run it.
pub async fn role_readiness(
    state: State<AppState>,
    Path(role): Path<String>,
    roles: Roles,
) -> Result<(StatusCode, Json<Readiness>), StatusCode> {
    let run = names(roles);
    let Some(&role) = run.iter().find(|r| **r == role) else {
        return Err(StatusCode::NOT_FOUND);
    };
    Ok(checked(&state, &[role]).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_needs_only_redis_and_workers_only_postgres() {
        let all = ["api", "grpc", "ingest", "workers"];
        let pg_down = report(&all, Check::Down, Check::Up);
        assert_eq!(pg_down.serving, ["ingest"]);
        assert_eq!(pg_down.status, "not_ready");
        assert_eq!(pg_down.unavailable[0].needs, ["postgres"]);
        let redis_down = report(&all, Check::Up, Check::Down);
        assert_eq!(redis_down.serving, ["workers"]);
        let ingest = report(&["ingest"], Check::Down, Check::Up);
        assert_eq!((ingest.status, ingest.serving), ("ready", vec!["ingest"]));
        let embedded = report(&all, Check::Embedded, Check::Embedded);
        assert_eq!(embedded.serving.len(), 4);
    }
}
