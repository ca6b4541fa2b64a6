//! The edge of the API as a browser meets it: cookie-authenticated changes
//! from other origins are refused (CSRF) while bearer tokens and API keys
//! are not concerned, and CORS preflights carry the security headers.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use hse_server::backends::Backends;
use hse_server::bootstrap::bootstrap_root;
use hse_server::{Config, http, server};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::client::{Answer, assert_problem};

/// The server's own origin.
const OWN: &str = "https://api.hse.example";
/// The browser origin `HSE_CORS_ORIGINS` allows.
const APP: &str = "https://app.hse.example";
/// Somebody else's page.
const EVIL: &str = "https://evil.example";

const PASSWORD: &str = "root password for edge tests";

/// The router with `HSE_PUBLIC_URL` and `HSE_CORS_ORIGINS` set, and the
/// root's session: its access token and the `Cookie` header a browser
/// would send.
struct Browser {
    router: Router,
    token: String,
    cookies: String,
}

impl Browser {
    async fn new() -> Self {
        let config = Config::from_lookup(|name| match name {
            "HSE_PUBLIC_URL" => Some(OWN.to_owned()),
            "HSE_CORS_ORIGINS" => Some(format!("{APP}, https://other.hse.example")),
            _ => None,
        })
        .expect("config");
        let state = server::services(
            &config,
            Backends::in_memory(),
            &tokio_util::task::TaskTracker::new(),
        )
        .expect("services build");
        bootstrap_root(&state, "root@hse.local", Some(PASSWORD.to_owned()))
            .await
            .expect("root bootstraps");
        let router = http::router(state, &config);
        let login = Request::post("/v1/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"email": "root@hse.local", "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        let response = router.clone().oneshot(login).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("; ");
        assert!(cookies.contains("__Host-hse_access="), "{cookies}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let tokens: Value = serde_json::from_slice(&body).unwrap();
        Self {
            router,
            token: tokens["access_token"].as_str().unwrap().to_owned(),
            cookies,
        }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// A fresh API key's id and secret, made with the bearer token.
    async fn key(&self) -> (String, String) {
        let created = self
            .send(
                Request::post("/v1/api-keys")
                    .header("authorization", format!("Bearer {}", self.token))
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({"name": "reader", "permissions": ["read_organization"]})
                            .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        (
            created.body["id"].as_str().unwrap().to_owned(),
            created.body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Does the key still work?
    async fn key_works(&self, key: &str) -> bool {
        let read = self
            .send(
                Request::get("/v1/organizations")
                    .header("x-api-key", key)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        read.status == StatusCode::OK
    }

    /// `DELETE /v1/api-keys/{id}` with the session cookie and `headers`.
    async fn revoke_by_cookie(&self, id: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::delete(format!("/v1/api-keys/{id}"))
            .header("cookie", &self.cookies)
            .header("host", "api.hse.example");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }
}

fn assert_security_headers(answer: &Answer) {
    for name in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
        "cache-control",
    ] {
        assert!(
            answer.headers.contains_key(name),
            "{name} missing from a {} answer: {:?}",
            answer.status,
            answer.headers
        );
    }
}

#[tokio::test]
async fn a_cookie_authenticated_change_from_elsewhere_is_refused_and_changes_nothing() {
    let browser = Browser::new().await;
    let (id, key) = browser.key().await;
    for headers in [
        &[("origin", EVIL)][..],
        &[("origin", "null")][..],
        &[("origin", "https://api.hse.example.evil.example")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("origin", APP), ("sec-fetch-site", "cross-site")][..],
    ] {
        let refused = browser.revoke_by_cookie(&id, headers).await;
        assert_problem(&refused, StatusCode::FORBIDDEN, "cross_origin_refused");
        assert_security_headers(&refused);
        assert!(browser.key_works(&key).await, "{headers:?} revoked the key");
    }
}

#[tokio::test]
async fn a_cookie_authenticated_change_from_an_allowed_origin_goes_through() {
    let browser = Browser::new().await;
    for headers in [
        &[("origin", OWN), ("sec-fetch-site", "same-origin")][..],
        &[("origin", APP), ("sec-fetch-site", "same-site")][..],
        &[("origin", "HTTPS://OTHER.hse.example:443")][..],
        &[][..],
    ] {
        let (id, key) = browser.key().await;
        let revoked = browser.revoke_by_cookie(&id, headers).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{headers:?}: {}", revoked.body);
        assert!(!browser.key_works(&key).await, "{headers:?} left the key");
    }
}

#[tokio::test]
async fn bearer_tokens_and_api_keys_are_not_concerned_by_the_origin() {
    let browser = Browser::new().await;
    let (id, _) = browser.key().await;
    let by_bearer = browser
        .send(
            Request::delete(format!("/v1/api-keys/{id}"))
                .header("authorization", format!("Bearer {}", browser.token))
                .header("cookie", &browser.cookies)
                .header("origin", EVIL)
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(by_bearer.status, StatusCode::NO_CONTENT, "{}", by_bearer.body);
    let (_, key) = browser.key().await;
    let by_key = browser
        .send(
            Request::post("/v1/organizations")
                .header("x-api-key", &key)
                .header("cookie", &browser.cookies)
                .header("origin", EVIL)
                .header("content-type", "application/json")
                .body(Body::from(json!({"name": "x"}).to_string()))
                .unwrap(),
        )
        .await;
    // The key lacks the permission: refused for that, not for its origin.
    assert_problem(&by_key, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn reads_and_refreshes_follow_the_rule_for_their_method() {
    let browser = Browser::new().await;
    let read = browser
        .send(
            Request::get("/v1/me")
                .header("cookie", &browser.cookies)
                .header("origin", EVIL)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    for path in ["/v1/auth/refresh", "/v1/auth/logout"] {
        let refused = browser
            .send(
                Request::post(path)
                    .header("cookie", &browser.cookies)
                    .header("origin", EVIL)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_problem(&refused, StatusCode::FORBIDDEN, "cross_origin_refused");
    }
    let refreshed = browser
        .send(
            Request::post("/v1/auth/refresh")
                .header("cookie", &browser.cookies)
                .header("origin", OWN)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
}

#[tokio::test]
async fn cors_preflights_carry_the_security_headers() {
    let browser = Browser::new().await;
    for origin in [APP, EVIL] {
        let preflight = browser
            .send(
                Request::builder()
                    .method(Method::OPTIONS)
                    .uri("/v1/bookings")
                    .header("origin", origin)
                    .header("access-control-request-method", "POST")
                    .header("access-control-request-headers", "content-type")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert!(preflight.status.is_success(), "{}", preflight.status);
        assert_security_headers(&preflight);
        assert_eq!(
            preflight.headers.get("access-control-allow-origin").is_some(),
            origin == APP,
            "{origin}: {:?}",
            preflight.headers
        );
    }
}
