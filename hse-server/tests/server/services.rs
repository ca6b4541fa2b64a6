//! PostgreSQL and Redis for one test: the fresh database `sqlx::test`
//! made, and a fresh Redis key prefix, as the binary's environment.

use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

/// The variables pointing the binary at the test's database (it applies
/// the migrations itself, as the owner, and serves as the application
/// role, made here if missing) and at Redis under a key prefix of its own.
pub(crate) async fn env(options: &PgConnectOptions) -> Vec<(&'static str, String)> {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = base.rsplit_once('/').expect("a database URL");
    let database = options
        .get_database()
        .expect("sqlx::test names the database");
    let redis = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let owner = format!("{server}/{database}");
    let pool = sqlx::PgPool::connect(&owner).await.unwrap();
    hse_core::postgres::ensure_app_login_role(&pool)
        .await
        .unwrap();
    pool.close().await;
    vec![
        ("HSE_DATABASE_URL", hse_core::postgres::app_role_url(&owner)),
        ("HSE_DATABASE_MIGRATION_URL", owner),
        ("HSE_REDIS_URL", redis),
        ("HSE_REDIS_PREFIX", format!("hse-e2e-{}:", Uuid::now_v7())),
        ("HSE_NODE_NAME", "e2e-node".into()),
    ]
}

/// The value of `name` in `env`.
pub(crate) fn value<'a>(env: &'a [(&str, String)], name: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} is set"))
}

/// Deletes the test's Redis keys (its prefix).
pub(crate) async fn forget_redis(env: &[(&str, String)]) {
    let client = redis::Client::open(value(env, "HSE_REDIS_URL")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", value(env, "HSE_REDIS_PREFIX")))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
