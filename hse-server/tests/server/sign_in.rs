//! Sign-in throttling through the real binary's accept loop: the source a
//! failure counts against is the connection's peer address, so a client
//! binds another loopback address (`127.0.0.2`) to be another source.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::binary::{self, ROOT, ROOT_PASSWORD, Server};
use crate::raw_http::{Answer, Call, send};

/// `POST /v1/auth/login` as root from a connection bound to `source`.
async fn sign_in_from(server: &Server, source: &str, password: &str) -> Answer {
    send(Call {
        method: Method::POST,
        url: format!("{}/v1/auth/login", server.url()),
        headers: &[],
        json: Some(json!({"email": ROOT, "password": password})),
        from: Some(source),
    })
    .await
}

/// Its `Retry-After`, in seconds.
fn retry_after(answer: &Answer) -> Option<u64> {
    answer.header("retry-after")?.parse().ok()
}

#[tokio::test]
async fn failures_from_one_address_slow_it_and_never_lock_the_owner_out() {
    let server = binary::start([("HSE_ROOT_PASSWORD", ROOT_PASSWORD)]);
    let attacker = "127.0.0.2";
    // Wrong passwords from the attacker's address until it is slowed
    // (three are free, then each waits longer).
    let mut failures = 0;
    let mut last_failed = Instant::now();
    let limited = loop {
        let answer = sign_in_from(&server, attacker, "a wrong guess").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            break answer;
        }
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        failures += 1;
        last_failed = Instant::now();
        assert!(failures <= 10, "{failures} failures and never slowed");
    };
    assert!(failures >= 3, "slowed after only {failures} failures");
    // The last failure was recorded just before its 401 was sent (after
    // the password check, which takes a while in a debug build); the first
    // wait is 1 s from it.
    let slowed_until = last_failed + Duration::from_secs(1);
    assert_eq!(limited.body["code"], "rate_limited", "{}", limited.body);
    assert!(
        retry_after(&limited).is_some_and(|s| s >= 1),
        "no Retry-After"
    );
    // The attacker's address is slowed, right password or not…
    let attacker_right = sign_in_from(&server, attacker, ROOT_PASSWORD).await;
    assert_eq!(
        attacker_right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        attacker_right.body
    );
    assert!(retry_after(&attacker_right).is_some_and(|s| s >= 1));
    // …while the owner, from another address, signs in at once, within
    // the attacker's wait (so an account-wide lock would have refused it).
    assert!(
        Instant::now() < slowed_until,
        "the owner was tried too late"
    );
    let owner = sign_in_from(&server, "127.0.0.1", ROOT_PASSWORD).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    assert!(owner.body["access_token"].is_string(), "{}", owner.body);
}
