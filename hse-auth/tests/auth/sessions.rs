//! Access tokens end with their session (issue 13, item 9): sign-out, a
//! refresh-token reuse and a password change refuse the access tokens
//! already issued, before their 15 minutes, on memory and on PostgreSQL
//! (across nodes through Redis: `nodes.rs`).

use chrono::Duration;
use hse_auth::{AuthError, LoginOutcome, Session};

use crate::support::Harness;

const PASSWORD: &str = "correct horse battery";

async fn sign_in(h: &Harness, email: &str, password: &str) -> Session {
    match h.auth.login(email, password).await {
        Ok(LoginOutcome::SignedIn(s)) => s,
        other => panic!("sign-in of {email}: {other:?}"),
    }
}

async fn works(h: &Harness, s: &Session) -> bool {
    match h.auth.authenticate(s.access.token.expose()).await {
        Ok(_) => true,
        Err(AuthError::InvalidToken) => false,
        Err(e) => panic!("unexpected {e:?}"),
    }
}

async fn sign_out_ends_the_access_tokens_of_that_session_only(h: Harness) {
    h.user("so@example.com", PASSWORD).await;
    let ended = sign_in(&h, "so@example.com", PASSWORD).await;
    let kept = sign_in(&h, "so@example.com", PASSWORD).await;
    // Verified once: the claims are now in the verified-token cache.
    assert!(works(&h, &ended).await);
    h.clock.advance(Duration::minutes(1));
    h.auth.logout(ended.refresh.token.expose()).await.unwrap();
    assert!(!works(&h, &ended).await, "a signed-out token still works");
    assert!(works(&h, &kept).await);
    // Signing out with an unknown token ends nothing.
    h.auth.logout("not a refresh token").await.unwrap();
    assert!(works(&h, &kept).await);
}

async fn a_refresh_token_reuse_ends_every_access_token_of_the_session(h: Harness) {
    h.user("ru@example.com", PASSWORD).await;
    let first = sign_in(&h, "ru@example.com", PASSWORD).await;
    let other = sign_in(&h, "ru@example.com", PASSWORD).await;
    h.clock.advance(Duration::minutes(1));
    let second = h.auth.refresh(first.refresh.token.expose()).await.unwrap();
    assert!(works(&h, &first).await && works(&h, &second).await);
    assert!(matches!(
        h.auth.refresh(first.refresh.token.expose()).await,
        Err(AuthError::RefreshReuse)
    ));
    assert!(!works(&h, &first).await, "the thief's token still works");
    assert!(
        !works(&h, &second).await,
        "the session's newest token still works"
    );
    assert!(works(&h, &other).await);
}

async fn a_password_change_ends_the_access_tokens_issued_before_it(h: Harness) {
    let p = h.user("pw@example.com", PASSWORD).await;
    let before = sign_in(&h, "pw@example.com", PASSWORD).await;
    assert!(works(&h, &before).await);
    h.clock.advance(Duration::seconds(5));
    h.auth
        .change_password(&p, PASSWORD, "another long secret")
        .await
        .unwrap();
    assert!(!works(&h, &before).await);
    let after = sign_in(&h, "pw@example.com", "another long secret").await;
    assert!(works(&h, &after).await);
}

crate::support::on_both!(
    sign_out_ends_the_access_tokens_of_that_session_only,
    a_refresh_token_reuse_ends_every_access_token_of_the_session,
    a_password_change_ends_the_access_tokens_issued_before_it,
);
