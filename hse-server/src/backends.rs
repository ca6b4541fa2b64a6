//! The services the server runs on: PostgreSQL and Redis when configured,
//! the in-memory adapters otherwise (the embedded default).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hse_auth::denylist::{Denylist, MemoryDenylist};
use hse_auth::rate_limit::{MemoryRateLimiter, RateLimiter};
use hse_auth::redis::{RedisDenylist, RedisFailureStore, RedisRateLimiter};
use hse_auth::store::AuthStore;
use hse_auth::throttle::{FailureStore, MemoryFailureStore};
use hse_auth::{MemoryAuthStore, SystemClock};
use hse_booking::BookingStore;
use hse_core::TenancyStore;
use hse_core::memory::MemoryTenancyStore;
use hse_core::postgres::PgTenancyStore;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{Config, Secret};

/// The Redis key prefix when `HSE_REDIS_PREFIX` is unset.
pub const DEFAULT_REDIS_PREFIX: &str = "hse:";

/// How long a readiness check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections to the configured services.
#[derive(Clone)]
pub struct Backends {
    /// PostgreSQL, when `HSE_DATABASE_URL` is set.
    pub postgres: Option<PgPool>,
    /// Redis, when `HSE_REDIS_URL` is set.
    pub redis: Option<redis::aio::ConnectionManager>,
    /// The tenancy store on whichever backend is configured.
    pub tenancy: Arc<dyn TenancyStore>,
    /// Refresh families, API keys, usage, TOTP.
    pub auth_store: Arc<dyn AuthStore>,
    /// Rate limits (shared through Redis when configured).
    pub limiter: Arc<dyn RateLimiter>,
    /// Sign-in failure counts (shared through Redis when configured).
    pub failures: Arc<dyn FailureStore>,
    /// Ended sessions whose access tokens are refused before they expire
    /// (shared through Redis when configured, so every node refuses them).
    pub denylist: Arc<dyn Denylist>,
    /// Guests, bookings, door codes and the notification outbox.
    pub booking_store: Arc<dyn BookingStore>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("postgres", &self.postgres.is_some())
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

/// The state of one dependency, as reported by readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Answered in time.
    Up,
    /// Did not answer, or answered with an error.
    Down,
    /// Not configured (embedded default).
    Embedded,
}

impl Backends {
    /// Connects to the configured services, applies migrations (as the
    /// owner, with `HSE_DATABASE_MIGRATION_URL`) and checks the application
    /// role ([`check_app_role`]); with none configured, builds the
    /// in-memory default.
    ///
    /// # Errors
    /// When a configured service cannot be reached or migrated.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let postgres = match &config.database_url {
            Some(url) => {
                let owner = config.database_migration_url.as_ref().map(Secret::expose);
                match connect_postgres(url.expose(), owner).await {
                    Ok(pool) => Some(pool),
                    Err(e) if buffers_ingest(config) && unreachable(&e) => {
                        Some(start_without_postgres(config, &e)?)
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let redis = match &config.redis_url {
            Some(url) => {
                let conn = connect_redis(url.expose()).await?;
                crate::redis_durability::enforce(&mut conn.clone(), config.redis_durability)
                    .await?;
                Some(conn)
            }
            None => None,
        };
        if postgres.is_none() {
            tracing::warn!(
                "no HSE_DATABASE_URL: running on in-memory storage; NOTHING IS DURABLE and all data is lost on exit"
            );
        }
        Ok(Self::from_parts_under(
            postgres,
            redis,
            &config.redis_prefix,
        ))
    }

    /// The embedded default: everything in memory, in this process.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::from_parts(None, None)
    }

    /// Builds the adapters over already-open connections (`None`: memory),
    /// Redis keys under [`DEFAULT_REDIS_PREFIX`].
    #[must_use]
    pub fn from_parts(
        postgres: Option<PgPool>,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Self {
        Self::from_parts_under(postgres, redis, DEFAULT_REDIS_PREFIX)
    }

    /// Builds the adapters over already-open connections (`None`: memory),
    /// every Redis key under `redis_prefix` (`HSE_REDIS_PREFIX`): rate
    /// limits at `<prefix>rl:`, sign-in failures at `<prefix>fail:`, so two
    /// deployments sharing one Redis share nothing.
    #[must_use]
    pub fn from_parts_under(
        postgres: Option<PgPool>,
        redis: Option<redis::aio::ConnectionManager>,
        redis_prefix: &str,
    ) -> Self {
        let (tenancy, auth_store): (Arc<dyn TenancyStore>, Arc<dyn AuthStore>) = match &postgres {
            Some(pool) => (
                Arc::new(PgTenancyStore::new(pool.clone())),
                Arc::new(hse_auth::postgres::PgAuthStore::new(pool.clone())),
            ),
            None => (
                Arc::new(MemoryTenancyStore::new()),
                Arc::new(MemoryAuthStore::new()),
            ),
        };
        let (limiter, failures): (Arc<dyn RateLimiter>, Arc<dyn FailureStore>) = match &redis {
            Some(conn) => (
                Arc::new(RedisRateLimiter::new(
                    conn.clone(),
                    format!("{redis_prefix}rl:"),
                )),
                Arc::new(RedisFailureStore::new(
                    conn.clone(),
                    format!("{redis_prefix}fail:"),
                )),
            ),
            None => (
                Arc::new(MemoryRateLimiter::new(Arc::new(SystemClock))),
                Arc::new(MemoryFailureStore::new()),
            ),
        };
        let denylist: Arc<dyn Denylist> = match &redis {
            Some(conn) => Arc::new(RedisDenylist::new(
                conn.clone(),
                format!("{redis_prefix}deny:"),
            )),
            None => Arc::new(MemoryDenylist::new()),
        };
        let booking_store: Arc<dyn BookingStore> = match &postgres {
            Some(pool) => Arc::new(hse_booking::postgres::PgBookingStore::new(pool.clone())),
            None => Arc::new(hse_booking::MemoryBookingStore::new()),
        };
        Self {
            postgres,
            redis,
            tenancy,
            auth_store,
            limiter,
            failures,
            denylist,
            booking_store,
        }
    }

    /// Checks PostgreSQL.
    pub async fn check_postgres(&self) -> Check {
        let Some(pool) = &self.postgres else {
            return Check::Embedded;
        };
        let ping = sqlx::query("SELECT 1").execute(pool);
        match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(_)) => Check::Up,
            _ => Check::Down,
        }
    }

    /// Checks Redis.
    pub async fn check_redis(&self) -> Check {
        let Some(conn) = &self.redis else {
            return Check::Embedded;
        };
        let mut conn = conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(_)) => Check::Up,
            _ => Check::Down,
        }
    }
}

/// Applies every crate's migrations as the schema owner (`migration_url`,
/// when given), then connects as the application role (`url`) and refuses
/// it unless row-level security binds it ([`check_app_role`]).
///
/// # Errors
/// When PostgreSQL is unreachable, a migration fails, or the application
/// role is unfit.
pub async fn connect_postgres(url: &str, migration_url: Option<&str>) -> anyhow::Result<PgPool> {
    if let Some(owner_url) = migration_url {
        // Notices off: every start would log each crate's `relation
        // "_sqlx_migrations" already exists, skipping`; what matters is
        // logged below instead.
        let options = PgConnectOptions::from_str(owner_url)
            .context("HSE_DATABASE_MIGRATION_URL: not a valid PostgreSQL URL")?
            .options([("client_min_messages", "warning")]);
        let owner = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("HSE_DATABASE_MIGRATION_URL: cannot connect to PostgreSQL")?;
        migrate(&owner)
            .await
            .context("HSE_DATABASE_MIGRATION_URL")?;
        log_layout(&owner).await;
        owner.close().await;
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("HSE_DATABASE_URL: cannot connect to PostgreSQL")?;
    check_app_role(&pool).await?;
    Ok(pool)
}

/// How often start-up retries PostgreSQL after starting without it.
const POSTGRES_RETRY: Duration = Duration::from_secs(2);

/// Whether this node can start while PostgreSQL is down: it ingests into
/// Redis, which holds what devices sent until the writer can store it.
fn buffers_ingest(config: &Config) -> bool {
    config.roles.ingest && config.redis_url.is_some()
}

/// Whether `error` says PostgreSQL did not answer (as opposed to answering
/// with a refusal: a bad role or a failed migration still stops start-up).
fn unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(|e| {
            matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_)
            )
        }) || cause
            .downcast_ref::<sqlx::migrate::MigrateError>()
            .is_some_and(|e| {
                matches!(
                    e,
                    sqlx::migrate::MigrateError::Execute(
                        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut
                    )
                )
            })
    })
}

/// Starts on a pool that connects when PostgreSQL answers, and finishes
/// what start-up would have done (migrations as the owner, the check of
/// the application role) in the background as soon as it does. A role
/// found unfit then stops the process, as it would have at start.
///
/// # Errors
/// When `HSE_DATABASE_URL` cannot make a pool.
fn start_without_postgres(config: &Config, error: &anyhow::Error) -> anyhow::Result<PgPool> {
    tracing::warn!(
        error = %format!("{error:#}"),
        "PostgreSQL does not answer: starting without it; ingest buffers in Redis, \
         migrations and the role check run once it answers"
    );
    let url = config
        .database_url
        .as_ref()
        .map(|u| u.expose().to_owned())
        .unwrap_or_default();
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&url)
        .context("HSE_DATABASE_URL: not a valid PostgreSQL URL")?;
    let owner = config
        .database_migration_url
        .as_ref()
        .map(|u| u.expose().to_owned());
    tokio::spawn(finish_postgres(pool.clone(), url, owner));
    Ok(pool)
}

/// Retries start-up's PostgreSQL steps until they succeed.
async fn finish_postgres(pool: PgPool, url: String, owner: Option<String>) {
    loop {
        tokio::time::sleep(POSTGRES_RETRY).await;
        match connect_postgres(&url, owner.as_deref()).await {
            Ok(checked) => {
                checked.close().await;
                tracing::info!("PostgreSQL answers: migrated and the application role checked");
                return;
            }
            Err(e) if unreachable(&e) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "PostgreSQL refused start-up; stopping");
                pool.close().await;
                std::process::exit(1);
            }
        }
    }
}

/// The start-up check of the tenant wall: refuses, naming each problem,
/// an application role that is a superuser, has `BYPASSRLS`, owns a table
/// (or may act as its owner), or reaches a table without forced row-level
/// security, and a database that is not migrated.
///
/// # Errors
/// The problems found, or the database error.
pub async fn check_app_role(pool: &PgPool) -> anyhow::Result<()> {
    let problems = hse_core::postgres::app_role_problems(pool)
        .await
        .context("HSE_DATABASE_URL: checking the application role")?;
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "HSE_DATABASE_URL: refusing to serve with this database role: {}. Connect as a role \
         that owns no table and has neither SUPERUSER nor BYPASSRLS (scripts/services creates \
         `hse_app`), and migrate as the owner with HSE_DATABASE_MIGRATION_URL",
        problems.join("; ")
    )
}

/// Logs, once per start, how device events are stored (the migration's
/// own notice is only raised the first time).
async fn log_layout(owner: &PgPool) {
    let timescale: Result<bool, _> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
    )
    .fetch_one(owner)
    .await;
    let layout = match timescale {
        Ok(true) => "a TimescaleDB hypertable",
        Ok(false) => "native daily partitions (TimescaleDB is not installed)",
        Err(_) => "unknown",
    };
    tracing::info!("migrations applied; device events are stored in {layout}");
}

/// Applies every crate's migrations, in dependency order.
///
/// # Errors
/// When a migration fails.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    hse_core::postgres::migrate(pool)
        .await
        .context("applying hse-core migrations")?;
    hse_auth::postgres::migrate(pool)
        .await
        .context("applying hse-auth migrations")?;
    hse_booking::postgres::migrate(pool)
        .await
        .context("applying hse-booking migrations")?;
    hse_devices::postgres::migrate(pool)
        .await
        .context("applying hse-devices migrations")?;
    Ok(())
}

async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).context("HSE_REDIS_URL: not a valid Redis URL")?;
    let connect = client.get_connection_manager();
    tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .context("HSE_REDIS_URL: Redis did not answer within 5 s")?
        .context("HSE_REDIS_URL: cannot connect to Redis")
}
