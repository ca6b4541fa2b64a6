//! Request extractors whose rejections are problem+json: JSON bodies,
//! paths and queries, the authenticated [`Caller`], and list paging.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use hse_auth::ApiKeyId;
use hse_auth::cookie::{ACCESS_COOKIE, read_cookie};
use hse_core::{Page, Principal};
use serde::Deserialize;

use super::error::ApiError;
use crate::state::AppState;

/// A JSON body; bad JSON is 400 naming the body, oversize is 413. A value
/// PostgreSQL cannot store (a NUL character, U+0000) is 400 as well, from
/// the stores' mapping of SQLSTATE class `22`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// A path parameter; a malformed id is 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query parameters; malformed ones are 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is over 1 MiB",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send `Content-Type: application/json`",
            ),
            _ => ApiError::invalid("body", rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::invalid("path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid("query", rejection.body_text())
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<uuid::Uuid>,
}

impl ListQuery {
    /// The page asked for.
    ///
    /// # Errors
    /// 400 naming `limit` when out of range.
    pub fn page(&self) -> Result<Page, ApiError> {
        Ok(Page::new(self.limit, self.cursor)?)
    }
}

/// The authenticated caller: from `Authorization: Bearer`, the
/// `__Host-hse_access` cookie, or `X-API-Key` (rate-limited per key).
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who is calling (for a key: its creator, narrowed to the key).
    pub principal: Principal,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(key) = header(parts, "x-api-key") {
            let key = state.auth.authenticate_api_key(&key).await?;
            if let Some(slot) = parts.extensions.get::<KeyUse>() {
                let _ = slot.0.set(key.key_id);
            }
            return Ok(Self {
                principal: key.principal,
            });
        }
        let bearer = header(parts, AUTHORIZATION.as_str())
            .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned));
        let cookie = || {
            header(parts, COOKIE.as_str())
                .and_then(|c| read_cookie(&c, ACCESS_COOKIE).map(str::to_owned))
        };
        let Some(token) = bearer.or_else(cookie) else {
            return Err(ApiError::unauthenticated(
                "send a bearer token, the session cookie or an API key",
            ));
        };
        let principal = state.auth.authenticate(&token).await?;
        let user = format!("user:{}", principal.user_id);
        state
            .backends
            .limiter
            .check(&user, state.user_quota)
            .await?
            .into_result()?;
        Ok(Self { principal })
    }
}

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Where [`Caller`] leaves the id of the API key it authenticated, so
/// [`audit_key_use`] can record the request once it is answered.
#[derive(Clone, Debug, Default)]
pub struct KeyUse(Arc<OnceLock<ApiKeyId>>);

/// Records every API-key request (key, route, status, time) in the usage
/// audit, which writes in batches off the request path.
pub async fn audit_key_use(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.headers().contains_key("x-api-key") {
        return next.run(request).await;
    }
    let slot = KeyUse::default();
    request.extensions_mut().insert(slot.clone());
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let response = next.run(request).await;
    if let Some(key_id) = slot.0.get() {
        state
            .auth
            .record_key_use(*key_id, &route, response.status().as_u16());
    }
    response
}
