//! Several server processes sharing PostgreSQL and Redis: revocations,
//! limits and the sign-in throttle hold across them.

use std::sync::Arc;

use chrono::Duration;
use hse_auth::redis::{RedisFailureStore, RedisRateLimiter};
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
        nodes.push(Authenticator::build(deps, config()).unwrap());
    }
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    (a, b, dir, clock)
}

#[sqlx::test(migrations = false)]
async fn a_key_revoked_on_one_node_stops_working_on_the_other_at_once(pool: PgPool) {
    let (a, b, dir, _clock) = two_nodes(pool.clone()).await;
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
    let (a, b, dir, clock) = two_nodes(pool.clone()).await;
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
