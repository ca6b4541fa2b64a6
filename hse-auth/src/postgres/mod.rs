//! PostgreSQL adapter of the [`AuthStore`] port (feature `postgres`).
//!
//! Schema: `hse-auth/migrations` (versions `202611281000xx`, `202612041000xx`), which refers
//! to hse-core's `users`: run `hse_core::postgres::migrate` first. Refresh
//! rotation is one conditional `UPDATE`: under concurrency PostgreSQL's row
//! lock lets exactly one transaction spend a token, and the loser sees it
//! spent and revokes the family.
//!
//! Every statement runs in a transaction of the system scope
//! ([`hse_core::postgres::system_tx`]): these tables have no tenant
//! columns, are reached for a token, key or user the server already
//! resolved, and their row-level security policies let only that scope in.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::postgres::system_tx;
use hse_core::{SecretHash, UserId};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{AuthError, Result};
use crate::model::{
    ApiKey, ApiKeyId, FamilyId, KeyUsage, Purged, RefreshFamily, RevokeReason, Rotation,
    TotpEnrollment,
};
use crate::store::AuthStore;

mod keys;

/// Applies hse-auth's migrations (after hse-core's). Idempotent.
///
/// # Errors
/// [`AuthError::Storage`] if a migration fails.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|e| AuthError::Storage(format!("hse-auth migrations: {e}")))
}

/// The PostgreSQL auth store.
#[derive(Clone, Debug)]
pub struct PgAuthStore {
    pool: PgPool,
}

impl PgAuthStore {
    /// A store on `pool` (migrated with [`migrate`]).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Maps constraint violations where the query is made: a taken id is
/// invalid input, a missing user is `NotFound`.
fn on_constraint(e: sqlx::Error) -> AuthError {
    let code = e.as_database_error().and_then(|d| d.code());
    match code.as_deref() {
        Some("23505") => AuthError::invalid("id", "already exists"),
        Some("23503") => AuthError::NotFound { entity: "user" },
        _ => e.into(),
    }
}

type TokenState = (
    Uuid,
    Uuid,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

async fn spend(
    tx: &mut Transaction<'_, Postgres>,
    presented: SecretHash,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, Uuid, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "UPDATE auth_refresh_tokens t SET spent_at = $2
         FROM auth_refresh_families f
         WHERE t.token_hash = $1 AND t.spent_at IS NULL AND f.id = t.family_id
           AND f.revoked_at IS NULL AND f.expires_at > $2
         RETURNING f.id, f.user_id, f.expires_at",
    )
    .bind(presented.0.as_slice())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?)
}

async fn token_state(
    tx: &mut Transaction<'_, Postgres>,
    presented: SecretHash,
) -> Result<Option<TokenState>> {
    Ok(sqlx::query_as(
        "SELECT f.id, f.user_id, t.spent_at, f.revoked_at, f.expires_at
         FROM auth_refresh_tokens t JOIN auth_refresh_families f ON f.id = t.family_id
         WHERE t.token_hash = $1",
    )
    .bind(presented.0.as_slice())
    .fetch_optional(&mut **tx)
    .await?)
}

async fn revoke_family(
    exec: impl sqlx::PgExecutor<'_>,
    id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE auth_refresh_families SET revoked_at = $2, revoke_reason = $3
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .bind(reason.as_str())
    .execute(exec)
    .await?;
    Ok(())
}

#[async_trait]
impl AuthStore for PgAuthStore {
    async fn create_family(&self, family: &RefreshFamily, first: SecretHash) -> Result<()> {
        let mut tx = system_tx(&self.pool).await?;
        sqlx::query(
            "INSERT INTO auth_refresh_families (id, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(family.id.as_uuid())
        .bind(family.user_id.as_uuid())
        .bind(family.created_at)
        .bind(family.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
        sqlx::query(
            "INSERT INTO auth_refresh_tokens (token_hash, family_id, issued_at) VALUES ($1, $2, $3)",
        )
        .bind(first.0.as_slice())
        .bind(family.id.as_uuid())
        .bind(family.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        presented: SecretHash,
        next: SecretHash,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Rotation> {
        let mut tx = system_tx(&self.pool).await?;
        if let Some((family, user, expires_at)) = spend(&mut tx, presented, now).await? {
            sqlx::query(
                "INSERT INTO auth_refresh_tokens (token_hash, family_id, issued_at) VALUES ($1, $2, $3)",
            )
            .bind(next.0.as_slice())
            .bind(family)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated {
                family_id: FamilyId(family),
                user_id: UserId(user),
                expires_at,
            });
        }
        let rotation = match token_state(&mut tx, presented).await? {
            Some((family, _, Some(spent), None, expires_at))
                if now < expires_at && now - spent < grace =>
            {
                Rotation::Raced {
                    family_id: FamilyId(family),
                }
            }
            Some((family, user, Some(_spent), None, expires_at)) if now < expires_at => {
                revoke_family(&mut *tx, family, RevokeReason::Reuse, now).await?;
                Rotation::Reused {
                    family_id: FamilyId(family),
                    user_id: UserId(user),
                }
            }
            _ => Rotation::Invalid,
        };
        tx.commit().await?;
        Ok(rotation)
    }

    async fn revoke_family_of(
        &self,
        token: SecretHash,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<Option<FamilyId>> {
        let mut tx = system_tx(&self.pool).await?;
        let Some((family, ..)) = token_state(&mut tx, token).await? else {
            return Ok(None);
        };
        revoke_family(&mut *tx, family, reason, now).await?;
        tx.commit().await?;
        Ok(Some(FamilyId(family)))
    }

    async fn revoke_user_families(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = system_tx(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE auth_refresh_families SET revoked_at = $2, revoke_reason = $3
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_uuid())
        .bind(now)
        .bind(reason.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn family_revoked(&self, id: FamilyId) -> Result<bool> {
        let mut tx = system_tx(&self.pool).await?;
        let live: Option<(bool,)> =
            sqlx::query_as("SELECT revoked_at IS NULL FROM auth_refresh_families WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(!live.is_some_and(|(l,)| l))
    }

    async fn purge(&self, now: DateTime<Utc>, usage_before: DateTime<Utc>) -> Result<Purged> {
        let mut tx = system_tx(&self.pool).await?;
        let families = sqlx::query("DELETE FROM auth_refresh_families WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let usage = sqlx::query("DELETE FROM auth_api_key_usage WHERE at < $1")
            .bind(usage_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Purged { families, usage })
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        keys::insert(&self.pool, key).await
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        keys::by_id(&self.pool, id).await
    }

    async fn api_keys_created_by(&self, user: UserId) -> Result<Vec<ApiKey>> {
        keys::created_by(&self.pool, user).await
    }

    async fn api_key_descendants(&self, id: ApiKeyId) -> Result<Vec<ApiKey>> {
        keys::descendants(&self.pool, id).await
    }

    async fn revoke_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> Result<bool> {
        keys::revoke(&self.pool, id, now).await
    }

    async fn insert_usage(&self, batch: &[KeyUsage]) -> Result<()> {
        let mut tx = system_tx(&self.pool).await?;
        let keys: Vec<Uuid> = batch.iter().map(|u| u.key_id.as_uuid()).collect();
        let routes: Vec<&str> = batch.iter().map(|u| u.route.as_str()).collect();
        let statuses: Vec<i16> = batch
            .iter()
            .map(|u| i16::try_from(u.status).unwrap_or(i16::MAX))
            .collect();
        let ats: Vec<DateTime<Utc>> = batch.iter().map(|u| u.at).collect();
        sqlx::query(
            "INSERT INTO auth_api_key_usage (key_id, route, status, at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int2[], $4::timestamptz[])",
        )
        .bind(keys)
        .bind(routes)
        .bind(statuses)
        .bind(ats)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn key_usage(&self, id: ApiKeyId, limit: u32) -> Result<Vec<KeyUsage>> {
        let mut tx = system_tx(&self.pool).await?;
        let rows: Vec<(String, i16, DateTime<Utc>)> = sqlx::query_as(
            "SELECT route, status, at FROM auth_api_key_usage WHERE key_id = $1
             ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(id.as_uuid())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(route, status, at)| KeyUsage {
                key_id: id,
                route,
                status: u16::try_from(status).unwrap_or(0),
                at,
            })
            .collect())
    }

    async fn put_totp(&self, e: &TotpEnrollment) -> Result<bool> {
        let mut tx = system_tx(&self.pool).await?;
        let done = sqlx::query(
            "INSERT INTO auth_totp (user_id, sealed_secret, confirmed_at, last_step, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id) DO UPDATE SET sealed_secret = EXCLUDED.sealed_secret,
                 confirmed_at = EXCLUDED.confirmed_at, last_step = EXCLUDED.last_step,
                 created_at = EXCLUDED.created_at
             WHERE auth_totp.confirmed_at IS NULL",
        )
        .bind(e.user_id.as_uuid())
        .bind(&e.sealed_secret)
        .bind(e.confirmed_at)
        .bind(e.last_step)
        .bind(e.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn totp(&self, user: UserId) -> Result<Option<TotpEnrollment>> {
        let mut tx = system_tx(&self.pool).await?;
        type Row = (Vec<u8>, Option<DateTime<Utc>>, Option<i64>, DateTime<Utc>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT sealed_secret, confirmed_at, last_step, created_at FROM auth_totp WHERE user_id = $1",
        )
        .bind(user.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row.map(
            |(sealed_secret, confirmed_at, last_step, created_at)| TotpEnrollment {
                user_id: user,
                sealed_secret,
                confirmed_at,
                last_step,
                created_at,
            },
        ))
    }

    async fn use_totp_step(&self, user: UserId, step: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = system_tx(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE auth_totp SET last_step = $2, confirmed_at = COALESCE(confirmed_at, $3)
             WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user.as_uuid())
        .bind(step)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_totp(&self, user: UserId) -> Result<()> {
        let mut tx = system_tx(&self.pool).await?;
        for table in ["auth_recovery_codes", "auth_totp"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user.as_uuid())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[SecretHash],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let hashes: Vec<&[u8]> = codes.iter().map(|c| c.0.as_slice()).collect();
        let mut tx = system_tx(&self.pool).await?;
        sqlx::query("DELETE FROM auth_recovery_codes WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO auth_recovery_codes (user_id, code_hash, created_at)
             SELECT $1, h, $3 FROM UNNEST($2::bytea[]) AS h",
        )
        .bind(user.as_uuid())
        .bind(hashes)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = system_tx(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE auth_recovery_codes SET used_at = $3
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user.as_uuid())
        .bind(code.0.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32> {
        let mut tx = system_tx(&self.pool).await?;
        let (left,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM auth_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }
}
