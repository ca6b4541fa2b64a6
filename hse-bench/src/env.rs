//! The services the benchmark runs against: scratch databases it creates
//! and drops, random Redis prefixes it deletes, and the process's RSS.

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool};

/// Where PostgreSQL and Redis are, and how big the run is.
#[derive(Debug)]
pub(crate) struct Env {
    /// Server URL (its database is only used to create scratch ones).
    pub(crate) db_url: String,
    /// Redis URL.
    pub(crate) redis_url: String,
    /// Tiny sizes.
    pub(crate) smoke: bool,
    /// The device pipeline feeds one more consumer group (`--extra-group`).
    pub(crate) extra_group: bool,
}

impl Env {
    /// From `HSE_DATABASE_MIGRATION_URL` (the owner, which may create
    /// databases; else `HSE_DATABASE_URL`) and `HSE_REDIS_URL`, with the
    /// defaults `scripts/services` prints.
    pub(crate) fn from_env(smoke: bool) -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let db_url = std::env::var("HSE_DATABASE_MIGRATION_URL")
            .unwrap_or_else(|_| var("HSE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hse"));
        Self {
            db_url,
            redis_url: var("HSE_REDIS_URL", "redis://127.0.0.1:6379"),
            smoke,
            extra_group: false,
        }
    }

    /// A fresh database `hse_bench_<random>` (dropped by [`Scratch::drop_now`]).
    pub(crate) async fn scratch(&self) -> anyhow::Result<Scratch> {
        let name = format!("hse_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = self.admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .with_context(|| "HSE_DATABASE_URL: cannot connect")?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let url = format!("{}/{name}", self.base_url());
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .connect(&url)
            .await?;
        Ok(Scratch {
            name,
            url,
            admin,
            pool,
        })
    }

    /// A random Redis key prefix.
    pub(crate) fn redis_prefix() -> String {
        format!("hse-bench:{}:", uuid::Uuid::new_v4().simple())
    }

    fn base_url(&self) -> &str {
        self.db_url
            .rsplit_once('/')
            .map_or(self.db_url.as_str(), |(b, _)| b)
    }

    fn admin_url(&self) -> String {
        format!("{}/postgres", self.base_url())
    }
}

/// A database made for one section.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// Its name.
    pub(crate) name: String,
    /// Its URL.
    pub(crate) url: String,
    admin: String,
    /// A pool on it.
    pub(crate) pool: PgPool,
}

impl Scratch {
    /// Applies the core and device migrations (what the ingest path needs).
    pub(crate) async fn migrate_devices(&self) -> anyhow::Result<()> {
        hse_core::postgres::migrate(&self.pool).await?;
        hse_devices::postgres::migrate(&self.pool).await?;
        sqlx::raw_sql(
            "SELECT hse_devices_ensure_partition(((now() AT TIME ZONE 'UTC')::date + d)) FROM generate_series(-1, 1) AS d",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the pool and drops the database.
    pub(crate) async fn drop_now(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut conn = PgConnection::connect(&self.admin).await?;
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// Deletes every key under `prefix`.
pub(crate) async fn delete_prefix(redis_url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        let () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}

/// This process's resident set size in KiB (`VmRSS` of /proc/self/status).
pub(crate) fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// `nproc`, memory, and the service versions, for the report.
pub(crate) async fn machine() -> serde_json::Value {
    let env = Env::from_env(true);
    let postgres = match PgConnection::connect(&env.admin_url()).await {
        Ok(mut c) => sqlx::query_scalar::<_, String>("SELECT version()")
            .fetch_one(&mut c)
            .await
            .unwrap_or_default(),
        Err(e) => format!("unreachable: {e}"),
    };
    let redis = async {
        let client = redis::Client::open(env.redis_url.as_str())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut c).await?;
        Ok::<_, anyhow::Error>(
            info.lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("?")
                .to_owned(),
        )
    }
    .await
    .unwrap_or_else(|e| format!("unreachable: {e}"));
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "memory_mib": mem_kib / 1024,
        "postgres": postgres,
        "redis": redis,
    })
}
