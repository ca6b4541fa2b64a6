//! Several server processes sharing PostgreSQL and Redis: revocations,
//! limits and the sign-in throttle hold across them.

use std::sync::Arc;

use chrono::Duration;
use hse_auth::redis::{RedisDenylist, RedisFailureStore, RedisRateLimiter};
use hse_auth::{AuthDeps, AuthError, Authenticator, LoginOutcome, ManualClock, NewApiKey};
use hse_core::ActionName;
use sqlx::PgPool;

use crate::support::{FakeDirectory, config, insert_pg_user, migrate, random_prefix, redis, start};

const PASSWORD: &str = "correct horse battery";

/// Two authenticators sharing a directory, a PostgreSQL store, Redis
/// limits under one prefix, and a clock.
async fn two_nodes(
    pool: PgPool,
) -> (
    Authenticator,
    Authenticator,
    Arc<FakeDirectory>,
    Arc<ManualClock>,
    String,
) {
    migrate(&pool).await;
    let dir = Arc::new(FakeDirectory::default());
    let clock = Arc::new(ManualClock::new(start()));
    let prefix = random_prefix();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let deps = AuthDeps {
            directory: dir.clone(),
            store: Arc::new(hse_auth::postgres::PgAuthStore::new(pool.clone())),
            limiter: Arc::new(
                RedisRateLimiter::new(redis().await, format!("{prefix}rl:"))
                    .with_clock(clock.clone()),
            ),
            failures: Arc::new(RedisFailureStore::new(
                redis().await,
                format!("{prefix}fail:"),
            )),
            clock: clock.clone(),
        };
        let denylist = RedisDenylist::new(redis().await, format!("{prefix}deny:"));
        nodes.push(
            Authenticator::build(deps, config())
                .unwrap()
                .with_denylist(Arc::new(denylist)),
        );
    }
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    (a, b, dir, clock, prefix)
}

#[sqlx::test(migrations = false)]
async fn a_key_revoked_on_one_node_stops_working_on_the_other_at_once(pool: PgPool) {
    let (a, b, dir, _clock, _prefix) = two_nodes(pool.clone()).await;
    let hash = a.passwords().hash(PASSWORD).await.unwrap();
    let creator = dir.add("kim@example.com", Some(hash));
    insert_pg_user(&pool, creator.user_id, "kim@example.com").await;
    let new = NewApiKey {
        name: "shared".into(),
        permissions: [ActionName::parse("read_device").unwrap()].into(),
        expires_at: None,
    };
    let (key, text) = a.create_api_key(&creator, new).await.unwrap();
    assert!(b.authenticate_api_key(text.expose()).await.is_ok());
    a.revoke_api_key(&creator, key.id).await.unwrap();
    assert!(matches!(
        b.authenticate_api_key(text.expose()).await,
        Err(AuthError::InvalidApiKey)
    ));
}

#[sqlx::test(migrations = false)]
async fn failures_on_one_node_delay_sign_in_on_the_other_and_sessions_rotate_across(pool: PgPool) {
    let (a, b, dir, clock, _prefix) = two_nodes(pool.clone()).await;
    let hash = a.passwords().hash(PASSWORD).await.unwrap();
    let user = dir.add("lu@example.com", Some(hash));
    insert_pg_user(&pool, user.user_id, "lu@example.com").await;
    for node in [&a, &b, &a] {
        assert!(matches!(
            node.login("lu@example.com", "wrong wrong").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        b.login("lu@example.com", PASSWORD).await,
        Err(AuthError::RateLimited { .. })
    ));
    clock.advance(Duration::seconds(1));
    let Ok(LoginOutcome::SignedIn(s)) = b.login("lu@example.com", PASSWORD).await else {
        panic!("sign-in after the delay failed");
    };
    let s2 = a.refresh(s.refresh.token.expose()).await.unwrap();
    assert!(matches!(
        b.refresh(s.refresh.token.expose()).await,
        Err(AuthError::RefreshReuse)
    ));
    assert!(a.refresh(s2.refresh.token.expose()).await.is_err());
}

#[sqlx::test(migrations = false)]
async fn a_sign_out_on_one_node_ends_the_access_token_on_the_other_for_its_lifetime(pool: PgPool) {
    let (a, b, dir, clock, prefix) = two_nodes(pool.clone()).await;
    let hash = a.passwords().hash(PASSWORD).await.unwrap();
    let user = dir.add("mo@example.com", Some(hash));
    insert_pg_user(&pool, user.user_id, "mo@example.com").await;
    let Ok(LoginOutcome::SignedIn(s)) = a.login("mo@example.com", PASSWORD).await else {
        panic!("sign-in failed");
    };
    assert!(b.authenticate(s.access.token.expose()).await.is_ok());
    clock.advance(Duration::minutes(5));
    a.logout(s.refresh.token.expose()).await.unwrap();
    assert!(matches!(
        b.authenticate(s.access.token.expose()).await,
        Err(AuthError::InvalidToken)
    ));
    // The record lives as long as the token could be accepted (15 min +
    // 30 s leeway from sign-out), not forever.
    let mut conn = redis().await;
    let key = format!("{prefix}deny:sid:{}", s.refresh.family_id);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (14 * 60_000..=930_000).contains(&ttl_ms),
        "{key}: {ttl_ms} ms"
    );
}
