//! Health endpoints: liveness says the process serves requests; readiness
//! says its dependencies answer, so a load balancer can hold traffic back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::backends::Check;
use crate::state::AppState;

/// The readiness report.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// PostgreSQL's state.
    pub postgres: Check,
    /// Redis's state.
    pub redis: Check,
}

/// `GET /health/liveness`: 200 while the process serves requests.
pub async fn liveness() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

/// `GET /health/readiness`: 200 when every configured dependency answers,
/// 503 otherwise.
pub async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let backends = &state.backends;
    let (postgres, redis) = tokio::join!(backends.check_postgres(), backends.check_redis());
    let ready = postgres != Check::Down && redis != Check::Down;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let report = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        postgres,
        redis,
    };
    (status, Json(report))
}
