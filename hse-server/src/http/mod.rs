//! The HTTP API of `docs/API.md`: routes, the layers every request passes
//! (body limit, timeout, cross-origin refusal of cookie-authenticated
//! changes, CORS, security headers), and the problem+json fallback.
//!
//! The security headers are the outer layers, so every answer carries
//! them: CORS preflights (which the CORS layer answers itself) and the
//! refusals of the inner layers too. Outermost is the request's span and
//! id ([`trace`]).

pub mod api_keys;
pub mod auth;
pub mod bookings;
pub mod csrf;
pub mod dead_letters;
pub mod devices;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod tenancy;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::state::AppState;
use crate::{health, metrics};
use error::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
];

/// The whole HTTP application.
///
/// Health, metrics and the OpenAPI document are always served; the API
/// routes only with the `api` role.
pub fn router(state: AppState, config: &Config) -> Router {
    // Install the recorder before the first request is counted.
    let _ = metrics::handle();
    let roles = config.roles;
    let mut app = Router::new()
        .route("/health/liveness", get(health::liveness))
        .route(
            "/health/readiness",
            get(move |s| health::readiness(s, roles)),
        )
        .route(
            "/health/readiness/{role}",
            get(move |s, r| health::role_readiness(s, r, roles)),
        )
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::document));
    if config.roles.api {
        app = app
            .merge(auth::routes())
            .merge(api_keys::routes())
            .merge(tenancy::routes())
            .merge(bookings::routes())
            .merge(devices::routes())
            .merge(dead_letters::routes());
    }
    if config.roles.ingest {
        app = app.merge(devices::ws_routes());
    }
    let mut app = app
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            extract::audit_key_use,
        ))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(csrf::Origins::new(&config.public_url, &config.cors_origins)),
            csrf::refuse_cross_origin,
        ))
        .layer(cors(&config.cors_origins));
    for (name, value) in SECURITY_HEADERS {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    // Outermost: the request's span covers every layer above.
    app.layer(axum::middleware::from_fn(trace::trace))
        .with_state(state)
}

/// CORS for the configured browser origins; none configured, none allowed.
fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
            trace::REQUEST_ID,
        ])
        .expose_headers([trace::REQUEST_ID])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}
