//! Dead letters for operators: events storage refused, listed and
//! replayed only for devices the caller may `read_dead_letter` /
//! `replay_dead_letter` on (root sees every one).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use hse_core::{CoreError, Principal};
use hse_devices::dlq::{DeadLetter, replay};
use serde::{Deserialize, Serialize};

use super::devices::{DEFAULT_LIMIT, EventView, MAX_LIMIT, action, may, time};
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiQuery, Caller};
use crate::state::AppState;

type Answer<T> = Result<Json<T>, ApiError>;

/// Dead letters replayed per request.
const MAX_REPLAY: usize = 100;

/// The dead-letter routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/replay", post(replay_dead_letters))
}

/// `GET /v1/dead-letters` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// `true`: retries exhausted; `false` (default): still retrying.
    permanent: Option<bool>,
    /// At most this many, 1–500 (default 50), oldest first.
    limit: Option<u32>,
}

/// An event storage refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    /// Its id, to replay it.
    id: String,
    /// The refused event.
    event: EventView,
    /// Storage's reason.
    reason: String,
    /// Failed retries so far.
    tries: u32,
    /// When it is retried next (while not permanent).
    next_attempt: DateTime<Utc>,
    /// Whether retries are exhausted.
    permanent: bool,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(l: DeadLetter) -> Self {
        Self {
            id: l.id,
            event: l.event.into(),
            reason: l.reason,
            tries: l.tries,
            next_attempt: time(l.next_attempt_ms),
            permanent: l.permanent,
        }
    }
}

/// Dead letters, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterList {
    /// The dead letters.
    items: Vec<DeadLetterView>,
    /// Always absent: raise `limit` to see more.
    next_cursor: Option<String>,
}

/// 403 unless `who` holds `name` somewhere (role-wide or in an
/// establishment); each item is then checked where it is placed.
fn require_anywhere(who: &Principal, name: &str) -> Result<(), ApiError> {
    let act = action(name)?;
    if who.permissions.contains(&act) || who.establishments.values().any(|p| p.contains(&act)) {
        return Ok(());
    }
    Err(CoreError::Denied(hse_core::Denied::MissingPermission { action: act }).into())
}

#[utoipa::path(get, path = "/v1/dead-letters", tag = "devices", params(DeadLetterQuery), responses((status = 200, body = DeadLetterList), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn dead_letters(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> Answer<DeadLetterList> {
    require_anywhere(&c.principal, "read_dead_letter")?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1-500"));
    }
    let letters = s
        .devices
        .dead_letters
        .list(q.permanent.unwrap_or(false), 1000)
        .await?;
    let mut items = Vec::new();
    for letter in letters {
        if items.len() == limit as usize {
            break;
        }
        if may(&s, &c.principal, letter.event.device_id, "read_dead_letter")
            .await
            .is_ok()
        {
            items.push(letter.into());
        }
    }
    Ok(Json(DeadLetterList {
        items,
        next_cursor: None,
    }))
}

/// `POST /v1/dead-letters/replay` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Dead-letter ids (1–100).
    ids: Vec<String>,
}

/// What became of one dead letter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayOutcome {
    /// The dead letter.
    id: String,
    /// `replayed`, `not_found` (gone, replayed before, or not yours),
    /// `refused` (storage still refuses it) or `unavailable` (retry).
    outcome: &'static str,
}

/// The outcome per dead letter, in request order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// One per id.
    items: Vec<ReplayOutcome>,
}

async fn replay_one(s: &AppState, who: &Principal, id: &str) -> &'static str {
    let letter = match s.devices.dead_letters.get(id).await {
        Ok(Some(letter)) => letter,
        Ok(None) => return "not_found",
        Err(_) => return "unavailable",
    };
    if may(s, who, letter.event.device_id, "replay_dead_letter")
        .await
        .is_err()
    {
        return "not_found";
    }
    match replay(&*s.devices.dead_letters, &*s.devices.sink, id).await {
        Ok(true) => "replayed",
        Ok(false) => "not_found",
        Err(hse_devices::SinkError::Content(_)) => "refused",
        Err(e) => {
            tracing::warn!(error = %e, "dead-letter replay failed");
            "unavailable"
        }
    }
}

#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "devices", request_body = ReplayRequest, responses((status = 200, body = ReplayReport), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn replay_dead_letters(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Answer<ReplayReport> {
    require_anywhere(&c.principal, "replay_dead_letter")?;
    if body.ids.is_empty() || body.ids.len() > MAX_REPLAY {
        return Err(ApiError::invalid("ids", "give 1-100 dead-letter ids"));
    }
    let mut items = Vec::with_capacity(body.ids.len());
    for id in body.ids {
        let outcome = replay_one(&s, &c.principal, &id).await;
        items.push(ReplayOutcome { id, outcome });
    }
    Ok(Json(ReplayReport { items }))
}
