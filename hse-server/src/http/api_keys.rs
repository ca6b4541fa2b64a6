//! `/v1/api-keys`: third parties' scoped keys. The key itself is shown
//! once, in the answer that creates it.
//!
//! Called with an API key, these routes act as that key: it creates only
//! its own children (permissions among its own, expiring no later: a later
//! or missing `expires_at` is 400), and lists and revokes only the keys
//! minted from it, holding `read_api_key` / `delete_api_key` (else 403;
//! another key's id is 404 like an unknown one).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use hse_auth::api_key::PresentedKey;
use hse_auth::{ApiKey, ApiKeyId, KeyActor, NewApiKey, SecretString};
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hse_core::{ActionName, Scope, UserId};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath, Caller};
use crate::state::AppState;

/// The API-key routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", post(create).get(list))
        .route("/v1/api-keys/{id}", delete(revoke))
}

/// `POST /v1/api-keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: String,
    permissions: BTreeSet<ActionName>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// An API key as listed: never its secret, only the last four characters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    /// Its id (the public part of the key).
    id: ApiKeyId,
    /// Its label.
    name: String,
    /// The user it acts for.
    created_by: UserId,
    /// The tenant scope it is bound to.
    scope: Scope,
    /// What it may do.
    permissions: BTreeSet<ActionName>,
    /// The secret's last four characters.
    last_four: String,
    /// When it was created.
    created_at: DateTime<Utc>,
    /// When it stops working by itself.
    expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    revoked_at: Option<DateTime<Utc>>,
    /// The key that minted it (`null`: made by its user, signed in).
    parent_id: Option<ApiKeyId>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            created_by: k.created_by,
            scope: k.scope,
            permissions: k.permissions,
            last_four: k.last_four,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            parent_id: k.parent_id,
        }
    }
}

/// Who acts: the caller, and the key it called with if it did ([`Caller`]
/// authenticates `X-API-Key` before any other credential, so a present
/// header is the key that was checked).
fn actor<'a>(c: &'a Caller, headers: &HeaderMap) -> KeyActor<'a> {
    let key_id = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .and_then(|text| PresentedKey::parse(text).ok())
        .map(|k| k.id());
    KeyActor {
        principal: &c.principal,
        key_id,
    }
}

/// A new key, with its only sight of the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    key: ApiKeyView,
    /// The whole key, `hse_<id>_<secret>`.
    api_key: String,
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = NewKeyBody, responses((status = 201, body = IssuedKey), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create(
    State(s): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let new = NewApiKey {
        name: body.name,
        permissions: body.permissions,
        expires_at: body.expires_at,
    };
    let (key, secret): (ApiKey, SecretString) =
        s.auth.create_api_key(actor(&c, &headers), new).await?;
    let api_key = secret.expose().to_owned();
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            key: key.into(),
            api_key,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", responses((status = 200, body = Vec<ApiKeyView>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list(
    State(s): State<AppState>,
    c: Caller,
    headers: HeaderMap,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let keys = s.auth.list_api_keys(actor(&c, &headers)).await?;
    Ok(Json(keys.into_iter().map(ApiKeyView::from).collect()))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn revoke(
    State(s): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    s.auth.revoke_api_key(actor(&c, &headers), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
