//! Cross-site request forgery on cookie sessions.
//!
//! A browser attaches the session cookies to every request to the API,
//! whichever page made it: `SameSite=Strict` keeps them off cross-site
//! requests in current browsers, but not off requests from a same-site
//! page of another origin, nor in browsers that ignore the attribute. So a
//! request the cookies would authenticate (no `X-API-Key`, no
//! `Authorization: Bearer`, a `__Host-hse_access` or `__Host-hse_refresh`
//! cookie) whose method can change something (anything but `GET`, `HEAD`,
//! `OPTIONS` and `TRACE`) is refused 403 `cross_origin_refused`, before
//! any handler runs, when
//! - its `Sec-Fetch-Site` is `cross-site`, or
//! - its `Origin` is neither the server's own (the origin of
//!   `HSE_PUBLIC_URL`, or the `Host` the request was sent to) nor one of
//!   `HSE_CORS_ORIGINS` (`Origin: null` included).
//!
//! Requests with an API key or a bearer token are not concerned: a page
//! cannot add those headers to a cross-origin request unless CORS allows
//! its origin. Neither are requests without `Origin` and `Sec-Fetch-Site`
//! (programs, not browsers: every current browser sends `Origin` on these
//! methods).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hse_auth::cookie::{ACCESS_COOKIE, REFRESH_COOKIE, read_cookie};

use super::error::ApiError;

/// The origins cookie-authenticated changes may come from.
#[derive(Clone, Debug)]
pub struct Origins {
    allowed: Vec<String>,
}

impl Origins {
    /// The server's own origin (of `public_url`) and the CORS origins.
    #[must_use]
    pub fn new(public_url: &str, cors_origins: &[String]) -> Self {
        let allowed = std::iter::once(public_url)
            .chain(cors_origins.iter().map(String::as_str))
            .filter_map(origin_of)
            .collect();
        Self { allowed }
    }

    /// Why a request must be refused, if it must.
    ///
    /// # Errors
    /// 403 `cross_origin_refused` for a cookie-authenticated change from a
    /// foreign origin or a cross-site page.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        if is_safe(method) || !authenticated_by_cookie(headers) {
            return Ok(());
        }
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
            return Err(refused());
        }
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().ok().and_then(origin_of);
        let host = headers.get(HOST).and_then(|v| v.to_str().ok());
        match origin {
            Some(o) if self.allowed.contains(&o) || same_host(&o, host) => Ok(()),
            _ => Err(refused()),
        }
    }
}

/// Refuses cookie-authenticated changes from elsewhere ([`Origins::check`]).
pub async fn refuse_cross_origin(
    State(origins): State<Arc<Origins>>,
    request: Request,
    next: Next,
) -> Response {
    match origins.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin_refused",
        "a change authenticated by the session cookie must come from this server's origin \
         or an allowed one; from elsewhere, send a bearer token or an API key",
    )
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Would [`super::extract::Caller`] (or refresh and logout) read the
/// session from a cookie?
fn authenticated_by_cookie(headers: &HeaderMap) -> bool {
    if headers.contains_key("x-api-key") {
        return false;
    }
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    if bearer {
        return false;
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| read_cookie(c, ACCESS_COOKIE).is_some() || read_cookie(c, REFRESH_COOKIE).is_some())
}

/// `scheme://host[:port]` of a URL or origin, lower-cased, without a
/// default port; `None` for anything else (`null` included).
fn origin_of(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host.to_owned(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
}

/// Is `origin` the host the request was sent to? (A browser sets `Host`
/// to where the request goes and `Origin` to the page that made it.)
fn same_host(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    let host = host.trim().to_ascii_lowercase();
    authority == host
        || ["http://", "https://"]
            .iter()
            .any(|scheme| origin_of(&format!("{scheme}{host}")).as_deref() == Some(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_in_their_serialized_form() {
        assert_eq!(
            origin_of("https://API.hse.example:443/v1/x").as_deref(),
            Some("https://api.hse.example")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("https://user@evil.example"), None);
        assert!(same_host("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(same_host("https://api.hse.example", Some("api.hse.example:443")));
        assert!(!same_host("https://evil.example", Some("api.hse.example")));
    }
}
