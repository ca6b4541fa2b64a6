//! A JSON client for the server's HTTP API, with a timeout on every call.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Longest a call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The API at one address, optionally signed in.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// Not signed in.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            token: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Signed in as `email` (retried while the server comes up).
    pub(crate) async fn login(&self, email: &str, password: &str) -> anyhow::Result<Self> {
        let body = serde_json::json!({"email": email, "password": password});
        let (status, answer) = self.call("POST", "/v1/auth/login", Some(&body)).await?;
        anyhow::ensure!(status == 200, "login {email}: {status} {answer}");
        let token = answer["access_token"]
            .as_str()
            .context("login gave no access_token")?;
        Ok(Self {
            token: Some(token.to_owned()),
            ..self.clone()
        })
    }

    /// One call: the status and the JSON body (`Null` when not JSON).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = hyper::Request::builder()
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
        let request = request.body(Full::new(payload))?;
        let answer = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(CALL_TIMEOUT, answer)
            .await
            .with_context(|| format!("{method} {path}: no answer in {CALL_TIMEOUT:?}"))?
    }

    /// POSTs and returns the new id; fails on anything but 201.
    pub(crate) async fn create(&self, path: &str, body: Value) -> anyhow::Result<String> {
        let (status, answer) = self.call("POST", path, Some(&body)).await?;
        anyhow::ensure!(status == 201, "POST {path}: {status} {answer}");
        Ok(answer["id"].as_str().context("no id")?.to_owned())
    }

    /// Whether `/health/readiness` answers 200.
    pub(crate) async fn ready(&self) -> bool {
        matches!(
            self.call("GET", "/health/readiness", None).await,
            Ok((200, _))
        )
    }
}
