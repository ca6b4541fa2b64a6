//! `/v1/auth/*` and `/v1/me`: sign-in, refresh, sign-out, who am I.
//!
//! Sign-in is throttled by source and account (`hse_auth::throttle`): the
//! source is the peer address of the connection (axum's
//! `ConnectInfo<SocketAddr>`, which the accept loop provides); a request
//! without one counts per account only. `X-Forwarded-For` is not trusted.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hse_auth::cookie::{REFRESH_COOKIE, clear_cookies, read_cookie};
use hse_auth::{LoginOutcome, Session, Source};
use hse_core::{ActionName, Scope, User};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, Caller};
use crate::state::AppState;

/// The auth routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/second-factor", post(second_factor))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me))
}

/// `POST /v1/auth/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/second-factor` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorBody {
    challenge: String,
    code: String,
}

impl std::fmt::Debug for SecondFactorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecondFactorBody")
    }
}

/// Refresh and logout take the token in the body or the cookie.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

impl std::fmt::Debug for RefreshBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshBody")
    }
}

/// A new session.
#[derive(Serialize, utoipa::ToSchema)]
struct Tokens {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: i64,
}

fn session_response(session: &Session) -> Response {
    let now = chrono::Utc::now();
    let body = Tokens {
        access_token: session.access.token.expose().to_owned(),
        refresh_token: session.refresh.token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: (session.access.expires_at - now).num_seconds().max(0),
    };
    let mut response = Json(body).into_response();
    for cookie in session.cookies(now) {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// Where a request comes from: the connection's peer address, if the
/// server recorded it.
#[derive(Clone, Copy, Debug)]
pub struct ClientSource(pub Source);

impl<S: Send + Sync> FromRequestParts<S> for ClientSource {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(
            peer.map_or_else(Source::unknown, |c| Source::ip(c.0.ip())),
        ))
    }
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginBody, responses((status = 200, body = Tokens), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientSource(source): ClientSource,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    match state
        .auth
        .login_from(&body.email, &body.password, source)
        .await?
    {
        LoginOutcome::SignedIn(session) => Ok(session_response(&session)),
        LoginOutcome::SecondFactorRequired { challenge } => Ok(Json(serde_json::json!({
            "second_factor_required": true,
            "challenge": challenge.token.expose(),
        }))
        .into_response()),
    }
}

#[utoipa::path(post, path = "/v1/auth/second-factor", tag = "auth", request_body = SecondFactorBody, responses((status = 200, body = Tokens), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn second_factor(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SecondFactorBody>,
) -> Result<Response, ApiError> {
    let session = state
        .auth
        .complete_second_factor(&body.challenge, &body.code)
        .await?;
    Ok(session_response(&session))
}

/// The refresh token from a JSON body (which may be empty) or the cookie.
fn presented_refresh(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let parsed: Option<RefreshBody> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", e.to_string()))?)
    };
    parsed
        .and_then(|b| b.refresh_token)
        .or_else(|| {
            let cookies = headers.get(COOKIE)?.to_str().ok()?;
            read_cookie(cookies, REFRESH_COOKIE).map(str::to_owned)
        })
        .ok_or_else(|| {
            ApiError::invalid("refresh_token", "send it in the body or the session cookie")
        })
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody, responses((status = 200, body = Tokens), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = presented_refresh(&headers, &body)?;
    let session = state.auth.refresh(&token).await?;
    Ok(session_response(&session))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshBody, responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = presented_refresh(&headers, &body)?;
    state.auth.logout(&token).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in clear_cookies() {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// `GET /v1/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The signed-in user.
    pub user: User,
    /// Its role's rank.
    pub hierarchy: u16,
    /// Its permissions.
    pub permissions: Vec<ActionName>,
    /// What it can see.
    pub scope: Scope,
}

#[utoipa::path(get, path = "/v1/me", tag = "auth", responses((status = 200, body = Me), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Me>, ApiError> {
    let p = caller.principal;
    let user = state
        .tenancy
        .store()
        .user(&hse_core::Scope::Platform, p.user_id)
        .await?;
    Ok(Json(Me {
        user,
        hierarchy: p.hierarchy.get(),
        permissions: p.permissions.iter().cloned().collect(),
        scope: p.scope(),
    }))
}
