//! Sign-in throttled by source and account (issue 13, item 9): failures
//! from one source never lock the owner out from another, spraying from one
//! source is stopped, and unknown accounts are answered alike.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Duration;
use hse_auth::{AuthError, LoginOutcome, MemoryAuthStore, Source};

use crate::support::{Harness, config, quota};

const PASSWORD: &str = "correct horse battery";

fn from(ip: &str) -> Source {
    Source::ip(ip.parse::<IpAddr>().expect("ip"))
}

async fn attempt(
    h: &Harness,
    email: &str,
    password: &str,
    source: Source,
) -> Result<(), AuthError> {
    match h.auth.login_from(email, password, source).await {
        Ok(LoginOutcome::SignedIn(_)) => Ok(()),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => Err(e),
    }
}

fn limited(r: &Result<(), AuthError>) -> bool {
    matches!(r, Err(AuthError::RateLimited { .. }))
}

/// A harness whose per-source quota does not get in the way of the
/// failure records under test.
fn roomy() -> Harness {
    let mut c = config();
    c.login_quota = quota(1000, 1);
    Harness::build(Arc::new(MemoryAuthStore::new()), None, c)
}

#[tokio::test]
async fn failures_from_one_source_never_lock_the_owner_out_from_another() {
    let h = roomy();
    h.user("own@example.com", PASSWORD).await;
    for email in ["own@example.com", "ghost@example.com"] {
        let attacker = from("203.0.113.7");
        for _ in 0..3 {
            let wrong = attempt(&h, email, "wrong wrong", attacker).await;
            assert!(
                matches!(wrong, Err(AuthError::InvalidCredentials)),
                "{email}"
            );
        }
        // The failing source is slowed, on a known and an unknown account alike…
        for password in ["wrong wrong", PASSWORD] {
            let r = attempt(&h, email, password, attacker).await;
            assert!(limited(&r), "{email}: {r:?}");
        }
    }
    // …but the owner signs in from elsewhere.
    attempt(&h, "own@example.com", PASSWORD, from("198.51.100.2"))
        .await
        .expect("the owner is not locked out");
    // An address of the same IPv6 /64 counts as the same source.
    for _ in 0..3 {
        let _ = attempt(&h, "own@example.com", "wrong", from("2001:db8::1")).await;
    }
    let same_net = attempt(&h, "own@example.com", PASSWORD, from("2001:db8::ffff")).await;
    assert!(limited(&same_net), "{same_net:?}");
    attempt(&h, "own@example.com", PASSWORD, from("2001:db8:0:1::1"))
        .await
        .expect("another /64 is another source");
}

#[tokio::test]
async fn one_source_spraying_many_accounts_is_stopped() {
    let h = roomy();
    h.user("vic@example.com", PASSWORD).await;
    let sprayer = from("192.0.2.66");
    for i in 0..20 {
        let r = attempt(&h, &format!("user{i}@example.com"), "Winter2026!", sprayer).await;
        assert!(
            matches!(r, Err(AuthError::InvalidCredentials)),
            "{i}: {r:?}"
        );
    }
    let r = attempt(&h, "vic@example.com", PASSWORD, sprayer).await;
    assert!(
        limited(&r),
        "the 21st failing-source attempt went through: {r:?}"
    );
    attempt(&h, "vic@example.com", PASSWORD, from("192.0.2.67"))
        .await
        .expect("another source is unaffected");
    h.clock.advance(Duration::seconds(1));
    let r = attempt(&h, "vic@example.com", PASSWORD, sprayer).await;
    assert!(r.is_ok(), "the delay passes: {r:?}");
}

#[tokio::test]
async fn many_sources_guessing_one_account_are_slowed_but_a_clean_source_is_not() {
    let h = roomy();
    h.user("pop@example.com", PASSWORD).await;
    for i in 1..=10 {
        let r = attempt(&h, "pop@example.com", "guess", from(&format!("10.0.0.{i}"))).await;
        assert!(
            matches!(r, Err(AuthError::InvalidCredentials)),
            "{i}: {r:?}"
        );
    }
    // Each guessing source has one failure of its own: now slowed there.
    let again = attempt(&h, "pop@example.com", PASSWORD, from("10.0.0.1")).await;
    assert!(limited(&again), "{again:?}");
    attempt(&h, "pop@example.com", PASSWORD, from("10.0.1.1"))
        .await
        .expect("a source that has not been failing signs in");
}

#[tokio::test]
async fn attempts_per_source_are_rate_limited_whatever_the_account() {
    let h = Harness::memory();
    h.user("rat@example.com", PASSWORD).await;
    let busy = from("192.0.2.10");
    for i in 0..10 {
        let _ = attempt(&h, &format!("a{i}@example.com"), PASSWORD, busy).await;
    }
    let r = attempt(&h, "rat@example.com", PASSWORD, busy).await;
    assert!(
        matches!(r, Err(AuthError::RateLimited { retry_after }) if retry_after.as_secs() == 6),
        "{r:?}"
    );
    attempt(&h, "rat@example.com", PASSWORD, from("192.0.2.11"))
        .await
        .expect("the quota is per source, not per account");
}
