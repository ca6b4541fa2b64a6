//! One HTTP request with everything a test may want to set or see: the
//! local address the connection is bound to (another source), request
//! headers, and the answer's headers.

use std::net::IpAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// An answer: status, headers, and the body as JSON (`Null` if not JSON).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// A header's value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// A request to send with [`send`].
pub(crate) struct Call<'a> {
    /// `GET`, `POST`, ...
    pub(crate) method: Method,
    /// The full URL.
    pub(crate) url: String,
    /// Extra headers.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// A JSON body.
    pub(crate) json: Option<Value>,
    /// The loopback address to connect from (`127.0.0.2`, ...).
    pub(crate) from: Option<&'a str>,
}

/// Sends `call` on a fresh connection.
pub(crate) async fn send(call: Call<'_>) -> Answer {
    let mut connector = HttpConnector::new();
    let local = call.from.map(|a| a.parse::<IpAddr>().expect("an address"));
    connector.set_local_address(local);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut request = Request::builder().method(call.method).uri(call.url);
    for (name, value) in call.headers {
        request = request.header(*name, *value);
    }
    let body = match call.json {
        Some(json) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Bytes::from(json.to_string())
        }
        None => Bytes::new(),
    };
    let request = request.body(Full::new(body)).expect("a request");
    let response = client.request(request).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}
