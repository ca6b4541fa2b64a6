//! API keys in PostgreSQL: rows of `auth_api_keys`, children stored only
//! under a live parent, and revocation down a key's descendants.

use chrono::{DateTime, Utc};
use hse_core::postgres::system_tx;
use hse_core::{ActionName, Scope, SecretHash, UserId};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::on_constraint;
use crate::error::{AuthError, Result};
use crate::model::{ApiKey, ApiKeyId};

type KeyRow = (
    Uuid,
    String,
    Uuid,
    Json<Scope>,
    Vec<String>,
    String,
    Vec<u8>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<Uuid>,
);

const KEY_COLUMNS: &str = "id, name, created_by, scope, permissions, last_four, secret_hash, \
                           created_at, expires_at, revoked_at, parent_id";

/// Revokes the still-live descendants of `root`; how many.
const REVOKE_DESCENDANTS: &str = "WITH RECURSIVE tree (id) AS (
         SELECT id FROM auth_api_keys WHERE parent_id = $1
         UNION SELECT k.id FROM auth_api_keys k JOIN tree t ON k.parent_id = t.id)
     UPDATE auth_api_keys SET revoked_at = $2
     WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL";

fn key_from_row(row: KeyRow) -> Result<ApiKey> {
    let (
        id,
        name,
        created_by,
        scope,
        permissions,
        last_four,
        hash,
        created_at,
        expires_at,
        revoked_at,
        parent_id,
    ) = row;
    let permissions = permissions
        .iter()
        .filter_map(|p| match ActionName::parse(p) {
            Ok(a) => Some(a),
            Err(_) => {
                tracing::warn!(api_key.id = %id, action = %p, "key holds an unknown action; ignored");
                None
            }
        })
        .collect();
    Ok(ApiKey {
        id: ApiKeyId(id),
        name,
        created_by: UserId(created_by),
        scope: scope.0,
        permissions,
        last_four,
        secret_hash: Some(SecretHash::from_slice(&hash)?),
        created_at,
        expires_at,
        revoked_at,
        parent_id: parent_id.map(ApiKeyId),
    })
}

/// Locks a parent key `FOR SHARE` if it is live at `now`, so it cannot be
/// revoked until the child is stored; [`AuthError::InvalidApiKey`] if not.
async fn lock_live_parent(
    tx: &mut Transaction<'_, Postgres>,
    parent: ApiKeyId,
    now: DateTime<Utc>,
) -> Result<()> {
    let live: Option<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM auth_api_keys
         WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)
         FOR SHARE",
    )
    .bind(parent.as_uuid())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    live.map(|_| ()).ok_or(AuthError::InvalidApiKey)
}

/// Stores a key; a child only under a live parent, locked meanwhile.
pub(super) async fn insert(pool: &PgPool, key: &ApiKey) -> Result<()> {
    let mut tx = system_tx(pool).await?;
    let hash = key
        .secret_hash
        .ok_or_else(|| AuthError::invalid("secret_hash", "an API key needs its hash"))?;
    let permissions: Vec<&str> = key.permissions.iter().map(ActionName::as_str).collect();
    if let Some(parent) = key.parent_id {
        lock_live_parent(&mut tx, parent, key.created_at).await?;
    }
    sqlx::query(&format!(
        "INSERT INTO auth_api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(key.id.as_uuid())
    .bind(&key.name)
    .bind(key.created_by.as_uuid())
    .bind(Json(&key.scope))
    .bind(permissions)
    .bind(&key.last_four)
    .bind(hash.0.as_slice())
    .bind(key.created_at)
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .bind(key.parent_id.map(|p| p.as_uuid()))
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?;
    tx.commit().await?;
    Ok(())
}

/// A key by id.
pub(super) async fn by_id(pool: &PgPool, id: ApiKeyId) -> Result<Option<ApiKey>> {
    let mut tx = system_tx(pool).await?;
    let row: Option<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.map(key_from_row).transpose()
}

/// The keys a user created, oldest first.
pub(super) async fn created_by(pool: &PgPool, user: UserId) -> Result<Vec<ApiKey>> {
    let mut tx = system_tx(pool).await?;
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE created_by = $1 ORDER BY id"
    ))
    .bind(user.as_uuid())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.into_iter().map(key_from_row).collect()
}

/// The keys minted from `id`, transitively, oldest first.
pub(super) async fn descendants(pool: &PgPool, id: ApiKeyId) -> Result<Vec<ApiKey>> {
    let mut tx = system_tx(pool).await?;
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "WITH RECURSIVE tree (id) AS (
             SELECT id FROM auth_api_keys WHERE parent_id = $1
             UNION SELECT k.id FROM auth_api_keys k JOIN tree t ON k.parent_id = t.id)
         SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE id IN (SELECT id FROM tree) ORDER BY id"
    ))
    .bind(id.as_uuid())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.into_iter().map(key_from_row).collect()
}

/// Locks the key first, so a concurrent mint from it (which holds it
/// `FOR SHARE`) either commits before and is caught by the descendant
/// sweep, or waits and then finds it revoked. Each sweep is a new
/// statement with a new snapshot, repeated until one finds nothing: a
/// grandchild minted while its parent's row was being swept is caught
/// by the next one.
/// Revokes a key and its descendants.
pub(super) async fn revoke(pool: &PgPool, id: ApiKeyId, now: DateTime<Utc>) -> Result<bool> {
    let mut tx = system_tx(pool).await?;
    let root: Option<(bool,)> =
        sqlx::query_as("SELECT revoked_at IS NULL FROM auth_api_keys WHERE id = $1 FOR UPDATE")
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((newly,)) = root else {
        tx.commit().await?;
        return Ok(false);
    };
    sqlx::query("UPDATE auth_api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id.as_uuid())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    loop {
        let swept = sqlx::query(REVOKE_DESCENDANTS)
            .bind(id.as_uuid())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if swept.rows_affected() == 0 {
            break;
        }
    }
    tx.commit().await?;
    Ok(newly)
}
