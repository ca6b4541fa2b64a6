//! A tiny client over the in-process router.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use hse_server::backends::Backends;
use hse_server::bootstrap::bootstrap_root;
use hse_server::{Config, http, server};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// An answer: status, headers and JSON body (`Null` when empty).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

/// The application on `backends`, with a bootstrapped root.
pub(crate) struct App {
    router: Router,
    state: hse_server::state::AppState,
    pub(crate) root_password: String,
}

pub(crate) const ROOT: &str = "root@hse.local";

impl App {
    pub(crate) async fn new(backends: Backends) -> Self {
        Self::with_state(backends, |_| {}).await
    }

    /// The application with `adjust` applied to its state first.
    pub(crate) async fn with_state(
        backends: Backends,
        adjust: impl FnOnce(&mut hse_server::state::AppState),
    ) -> Self {
        let config = Config::from_lookup(|_| None).expect("default config");
        let mut state = server::services(&config, backends, &tokio_util::task::TaskTracker::new())
            .expect("services build");
        adjust(&mut state);
        let password = "root password for tests".to_owned();
        bootstrap_root(&state, ROOT, Some(password.clone()))
            .await
            .expect("root bootstraps");
        Self {
            router: http::router(state.clone(), &config),
            state,
            root_password: password,
        }
    }

    pub(crate) fn auth_store(&self) -> std::sync::Arc<dyn hse_auth::store::AuthStore> {
        self.state.backends.auth_store.clone()
    }

    pub(crate) async fn memory() -> Self {
        Self::new(Backends::in_memory()).await
    }

    pub(crate) async fn raw(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body reads")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn raw_text(&self, request: Request<Body>) -> String {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body reads")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.raw(request.expect("request builds")).await
    }

    /// A request authenticated with the API key `key`.
    pub(crate) async fn with_key(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", key);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.raw(request.body(body).expect("request builds")).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub(crate) async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// `POST /v1/auth/login`; the answer.
    pub(crate) async fn sign_in(&self, email: &str, password: &str) -> Answer {
        let body = json!({"email": email, "password": password});
        self.call(Method::POST, "/v1/auth/login", None, Some(body))
            .await
    }

    /// `POST /v1/auth/refresh` with `refresh_token` in the body.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Answer {
        let body = json!({"refresh_token": refresh_token});
        self.call(Method::POST, "/v1/auth/refresh", None, Some(body))
            .await
    }

    /// `POST /v1/auth/logout` with `refresh_token` in the body.
    pub(crate) async fn logout(&self, refresh_token: &str) -> Answer {
        let body = json!({"refresh_token": refresh_token});
        self.call(Method::POST, "/v1/auth/logout", None, Some(body))
            .await
    }

    /// Signs in and returns the access token.
    pub(crate) async fn login(&self, email: &str, password: &str) -> String {
        tokens(&self.sign_in(email, password).await).0
    }

    pub(crate) async fn root_token(&self) -> String {
        self.login(ROOT, &self.root_password).await
    }

    /// Invites `email` with `role_id` to `target`, accepts, signs in.
    pub(crate) async fn onboard(
        &self,
        inviter: &str,
        email: &str,
        role_id: &str,
        target: Value,
    ) -> String {
        let invited = self
            .post(
                "/v1/invitations",
                inviter,
                json!({"email": email, "role_id": role_id, "target": target}),
            )
            .await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
        let token = invited.body["token"].as_str().expect("token").to_owned();
        let accepted = self
            .call(
                Method::POST,
                &format!("/v1/invitations/{token}/accept"),
                None,
                Some(json!({"first_name": "Ana", "password": "a long enough passphrase"})),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
        self.login(email, "a long enough passphrase").await
    }
}

/// The access and refresh tokens of a 200 sign-in or refresh answer.
pub(crate) fn tokens(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let field = |name: &str| answer.body[name].as_str().expect(name).to_owned();
    (field("access_token"), field("refresh_token"))
}

/// Asserts a problem+json answer with `status` and `code`.
pub(crate) fn assert_problem(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(answer.body["status"], status.as_u16());
    assert_eq!(answer.body["code"], code, "{}", answer.body);
}
