//! Run with: `eval "$(scripts/services)" && cargo run --example embed_postgres --features postgres,redis`
//!
//! A partner's own service embedding HSE on PostgreSQL and Redis, through
//! the `hse` facade alone (`hse = { features = ["postgres", "redis"] }`):
//! it migrates the schema as its owner, then works as the application role
//! that row-level security binds; the tenancy and booking stores are the
//! PostgreSQL ones, the rate limiter the Redis one. The story (root, an
//! organization, a hotel, a room and its lock, a guest, a booking, an
//! overlapping one refused by the database, a third attempt paced through
//! Redis) is `examples/support/sdk_story.rs`; `examples/embed_sdk.rs` is
//! the same kind of service on the memory stores.
//!
//! Every run tags its emails, so it can run again on the same database.

#[path = "support/sdk_story.rs"]
mod sdk_story;

use std::sync::Arc;

use anyhow::Context;
use hse::redis::aio::ConnectionManager;
use hse::sqlx::PgPool;

use sdk_story::{Stores, hotel_story};

/// What `--help` prints.
const USAGE: &str = "embed_postgres: HSE embedded in a partner's service, on PostgreSQL and Redis

ENVIRONMENT (as `scripts/services` prints them):
    HSE_DATABASE_MIGRATION_URL  the schema owner, to migrate with
                                [postgres://postgres@127.0.0.1:5432/hse]
    HSE_DATABASE_URL            the application role (no SUPERUSER, no BYPASSRLS)
                                [postgres://hse_app@127.0.0.1:5432/hse]
    HSE_REDIS_URL               Redis                        [redis://127.0.0.1:6379]
    HSE_REDIS_PREFIX            prefix of its Redis keys     [hse-example:]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let owner_url = var(
        "HSE_DATABASE_MIGRATION_URL",
        "postgres://postgres@127.0.0.1:5432/hse",
    );
    let app_url = var("HSE_DATABASE_URL", "postgres://hse_app@127.0.0.1:5432/hse");
    let redis_url = var("HSE_REDIS_URL", "redis://127.0.0.1:6379");
    let prefix = var("HSE_REDIS_PREFIX", "hse-example:");

    let owner = PgPool::connect(&owner_url)
        .await
        .context("HSE_DATABASE_MIGRATION_URL: cannot connect")?;
    hse::core::postgres::migrate(&owner).await?;
    hse::booking::postgres::migrate(&owner).await?;
    owner.close().await;
    let pool = PgPool::connect(&app_url)
        .await
        .context("HSE_DATABASE_URL: cannot connect")?;
    let redis = hse::redis::Client::open(redis_url.as_str())?;
    let redis = ConnectionManager::new(redis)
        .await
        .context("HSE_REDIS_URL: cannot connect")?;
    let stores = Stores {
        tenancy: Arc::new(hse::core::postgres::PgTenancyStore::new(pool.clone())),
        bookings: Arc::new(hse::booking::postgres::PgBookingStore::new(pool.clone())),
        limiter: Arc::new(hse::auth::redis::RedisRateLimiter::new(
            redis,
            format!("{prefix}rl:"),
        )),
    };
    let tag = format!(
        "{:x}",
        std::process::id() ^ chrono::Utc::now().timestamp_subsec_nanos()
    );
    let told = hotel_story(&stores, &tag).await?;
    println!(
        "stored in PostgreSQL: booking {} of room {} (the overlap was refused for {}); \
         {} attempts let through by Redis",
        told.booking, told.room, told.refused_for, told.attempts_allowed
    );
    Ok(())
}
