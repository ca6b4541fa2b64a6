//! A minimal JSON-over-HTTP client, shared by the examples and hse-soak
//! (`#[path = "../../examples/support/http.rs"]`), optionally with a
//! timeout on every call.

use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Talks JSON to one HSE server, optionally with a bearer token.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    base: String,
    token: Option<String>,
    timeout: Option<Duration>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// A client for `base`, e.g. `http://127.0.0.1:8080`.
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            timeout: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The same client giving up on a call that has not answered (body
    /// included) within `limit`.
    #[allow(
        dead_code,
        reason = "shared file: hse-soak bounds its calls, the examples do not (`expect` would be unfulfilled in hse-soak)"
    )]
    pub(crate) fn with_timeout(self, limit: Duration) -> Self {
        Self {
            timeout: Some(limit),
            ..self
        }
    }

    /// The same client acting with `token`.
    pub(crate) fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Sends a request and returns the status and JSON body (`Null` when
    /// the body is not JSON).
    ///
    /// # Errors
    /// No answer (within the timeout, if set).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let request = self.request(&method, path, body)?;
        let answer = async {
            let response = self.client.request(request).await.context("HTTP request")?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, answer)
                .await
                .with_context(|| format!("{method} {path}: no answer in {limit:?}"))?,
            None => answer.await,
        }
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some(b) => {
                request = request.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        Ok(request.body(Full::new(payload))?)
    }

    /// `POST`, expecting `expected`; returns the body.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: Value,
        expected: StatusCode,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.send(Method::POST, path, Some(&body)).await?;
        anyhow::ensure!(status == expected, "POST {path}: {status} {answer}");
        Ok(answer)
    }

    /// `GET`, expecting 200; returns the body.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, answer) = self.send(Method::GET, path, None).await?;
        anyhow::ensure!(status == StatusCode::OK, "GET {path}: {status} {answer}");
        Ok(answer)
    }

    /// Signs in and returns a client acting as that user.
    pub(crate) async fn login(&self, email: &str, password: &str) -> anyhow::Result<Self> {
        let body = serde_json::json!({"email": email, "password": password});
        let answer = self.post("/v1/auth/login", body, StatusCode::OK).await?;
        let token = answer["access_token"].as_str().context("no access_token")?;
        Ok(self.with_token(token))
    }
}

/// The `id` of an answer.
pub(crate) fn id(answer: &Value) -> anyhow::Result<String> {
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .context("answer has no id")
}
