//! The SDK end to end through the `hse` facade, as a partner embeds it:
//! the same service story on the memory stores and on PostgreSQL and
//! Redis (`hse::core::postgres`, `hse::booking::postgres`,
//! `hse::auth::redis`), checked in what the service returns and in the
//! rows PostgreSQL holds.

#[path = "../examples/support/sdk_story.rs"]
mod sdk_story;

use std::sync::Arc;

use hse::auth::SystemClock;
use hse::auth::rate_limit::MemoryRateLimiter;
use hse::redis::aio::ConnectionManager;
use hse::sqlx::PgPool;
use hse::sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use sdk_story::{Stores, Told, hotel_story};

/// What every run of the story must show.
fn told_the_story(told: &Told) {
    assert_eq!(
        told.refused_for, told.booking,
        "the overlap names the booking"
    );
    assert_eq!(told.attempts_allowed, 2, "the third attempt is paced");
}

#[tokio::test]
async fn the_story_runs_on_the_memory_stores() {
    let stores = Stores {
        tenancy: Arc::new(hse::core::MemoryTenancyStore::new()),
        bookings: Arc::new(hse::booking::MemoryBookingStore::new()),
        limiter: Arc::new(MemoryRateLimiter::new(Arc::new(SystemClock))),
    };
    told_the_story(&hotel_story(&stores, "memory").await.unwrap());
}

#[sqlx::test(migrations = false)]
async fn the_story_runs_on_postgres_and_redis(_: PgPoolOptions, options: PgConnectOptions) {
    let owner = PgPool::connect_with(options).await.unwrap();
    hse::core::postgres::migrate(&owner).await.unwrap();
    hse::booking::postgres::migrate(&owner).await.unwrap();
    // The service works as the application role, bound by row-level
    // security, as in production.
    let app = hse::core::postgres::app_pool(&owner, 4).await.unwrap();
    let redis_url =
        std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = hse::redis::Client::open(redis_url.as_str()).unwrap();
    let redis = ConnectionManager::new(redis).await.unwrap();
    let prefix = format!("hse-sdk-test-{}:", uuid_like());
    let stores = Stores {
        tenancy: Arc::new(hse::core::postgres::PgTenancyStore::new(app.clone())),
        bookings: Arc::new(hse::booking::postgres::PgBookingStore::new(app.clone())),
        limiter: Arc::new(hse::auth::redis::RedisRateLimiter::new(
            redis.clone(),
            format!("{prefix}rl:"),
        )),
    };
    let told = hotel_story(&stores, "pg").await.unwrap();
    told_the_story(&told);

    let rows: Vec<(hse::sqlx::types::Uuid,)> =
        hse::sqlx::query_as("SELECT id FROM bookings WHERE area_id = $1")
            .bind(told.room.as_uuid())
            .fetch_all(&owner)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "one booking stored, the overlap not");
    let mut conn = redis;
    let keys: Vec<String> = hse::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        keys.len(),
        1,
        "the attempts were counted in Redis: {keys:?}"
    );
    let () = hse::redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A unique enough tag for this run's Redis keys.
fn uuid_like() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}-{:x}", now.as_nanos(), std::process::id())
}
