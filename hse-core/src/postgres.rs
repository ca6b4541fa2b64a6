//! PostgreSQL adapter of the [`TenancyStore`](crate::store::TenancyStore)
//! port (feature `postgres`).
//!
//! Schema: `hse-core/migrations`. Every HSE crate's migrations share one
//! `_sqlx_migrations` table with globally unique versions (hse-core uses
//! `20261128000xxx`), so each crate's [`migrate`] ignores the others'.

use sqlx::PgPool;

use crate::action::catalogue;
use crate::error::CoreError;

/// Applies hse-core's migrations and upserts the permission catalogue.
/// Idempotent; safe to run at every start.
///
/// # Errors
/// [`CoreError::Storage`] if a migration or the catalogue upsert fails.
pub async fn migrate(pool: &PgPool) -> Result<(), CoreError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|e| CoreError::Storage(format!("hse-core migrations: {e}")))?;
    seed_catalogue(pool).await
}

async fn seed_catalogue(pool: &PgPool) -> Result<(), CoreError> {
    let mut tx = pool.begin().await?;
    for action in catalogue() {
        sqlx::query(
            "INSERT INTO actions (name, resource, verb, category, description, exclusive_to)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET resource = EXCLUDED.resource, verb = EXCLUDED.verb,
                 category = EXCLUDED.category, description = EXCLUDED.description,
                 exclusive_to = EXCLUDED.exclusive_to",
        )
        .bind(action.name)
        .bind(action.resource)
        .bind(action.verb)
        .bind(action.category)
        .bind(action.description)
        .bind(action.exclusive_to.map(|r| r.name()))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
