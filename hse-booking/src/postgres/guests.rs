//! Guests and companion links.

use chrono::{DateTime, Utc};
use hse_core::postgres::scoped_tx;
use hse_core::{Listing, Page, Scope};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::collect;
use super::rows::{self, GUEST_COLUMNS};
use super::scope::{GUEST_IN_SCOPE, scoped};
use super::violation::on_write;
use crate::error::{BookingError, Result};
use crate::model::{Companion, Guest, GuestId, GuestPatch};

pub(super) async fn insert(pool: &PgPool, scope: &Scope, guest: &Guest) -> Result<()> {
    let resource = hse_core::Resource::organization(
        guest.tenancy.partner_company_id,
        guest.tenancy.organization_id,
    );
    if !scope.contains(&resource) {
        return Err(BookingError::not_found("organization"));
    }
    let mut tx = scoped_tx(pool, scope).await?;
    let done = sqlx::query(
        "INSERT INTO guests (id, organization_id, first_name, last_name, email, phone, document_type,
             document_number, country, metadata, created_at, updated_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
         WHERE EXISTS (SELECT 1 FROM organizations o WHERE o.id = $2
                       AND o.partner_company_id IS NOT DISTINCT FROM $13)",
    )
    .bind(guest.id.as_uuid())
    .bind(guest.tenancy.organization_id.as_uuid())
    .bind(guest.first_name.clone())
    .bind(guest.last_name.clone())
    .bind(guest.email.as_ref().map(ToString::to_string))
    .bind(guest.phone.clone())
    .bind(guest.document_type.clone())
    .bind(guest.document_number.clone())
    .bind(guest.country.clone())
    .bind(serde_json::Value::from(guest.metadata.clone()))
    .bind(guest.created_at)
    .bind(guest.updated_at)
    .bind(guest.tenancy.partner_company_id.map(|p| p.as_uuid()))
    .execute(&mut *tx)
    .await
    .map_err(on_write)?;
    if done.rows_affected() != 1 {
        return Err(BookingError::not_found("organization"));
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(pool: &PgPool, scope: &Scope, id: GuestId) -> Result<Guest> {
    let mut tx = scoped_tx(pool, scope).await?;
    let guest = get_in(&mut tx, scope, id).await?;
    tx.commit().await?;
    Ok(guest)
}

/// [`get`] in a transaction open in `scope`.
async fn get_in(tx: &mut PgConnection, scope: &Scope, id: GuestId) -> Result<Guest> {
    let sql = format!(
        "SELECT {GUEST_COLUMNS} FROM guests g JOIN organizations o ON o.id = g.organization_id
         WHERE g.id = $5 AND {GUEST_IN_SCOPE}"
    );
    let row = scoped(&sql, scope)
        .bind(id.as_uuid())
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| BookingError::not_found("guest"))?;
    rows::guest(&row)
}

pub(super) async fn list(pool: &PgPool, scope: &Scope, page: Page) -> Result<Listing<Guest>> {
    let sql = format!(
        "SELECT {GUEST_COLUMNS} FROM guests g JOIN organizations o ON o.id = g.organization_id
         WHERE {GUEST_IN_SCOPE} AND ($5::uuid IS NULL OR g.id > $5) ORDER BY g.id LIMIT $6"
    );
    let mut tx = scoped_tx(pool, scope).await?;
    let rows = scoped(&sql, scope)
        .bind(page.after())
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Listing::from_overfetch(
        collect(&rows, rows::guest)?,
        page,
        |g| g.id.as_uuid(),
    ))
}

pub(super) async fn update(
    pool: &PgPool,
    scope: &Scope,
    id: GuestId,
    patch: GuestPatch,
    now: DateTime<Utc>,
) -> Result<Guest> {
    let mut tx = scoped_tx(pool, scope).await?;
    let sql = format!(
        "SELECT {GUEST_COLUMNS} FROM guests g JOIN organizations o ON o.id = g.organization_id
         WHERE g.id = $5 AND {GUEST_IN_SCOPE} FOR UPDATE OF g"
    );
    let row = scoped(&sql, scope)
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| BookingError::not_found("guest"))?;
    let mut guest = rows::guest(&row)?;
    patch.apply(&mut guest, now)?;
    sqlx::query(
        "UPDATE guests SET first_name = $2, last_name = $3, email = $4, phone = $5, document_type = $6,
             document_number = $7, country = $8, metadata = $9, updated_at = $10 WHERE id = $1",
    )
    .bind(guest.id.as_uuid())
    .bind(guest.first_name.clone())
    .bind(guest.last_name.clone())
    .bind(guest.email.as_ref().map(ToString::to_string))
    .bind(guest.phone.clone())
    .bind(guest.document_type.clone())
    .bind(guest.document_number.clone())
    .bind(guest.country.clone())
    .bind(serde_json::Value::from(guest.metadata.clone()))
    .bind(guest.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(on_write)?;
    tx.commit().await?;
    Ok(guest)
}

pub(super) async fn add_companion(pool: &PgPool, scope: &Scope, link: &Companion) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    let a = get_in(&mut tx, scope, link.guest_id).await?;
    let b = get_in(&mut tx, scope, link.companion_id).await?;
    if a.tenancy.organization_id != b.tenancy.organization_id || a.id == b.id {
        return Err(BookingError::invalid(
            "companion_id",
            "must be another guest of the same organization",
        ));
    }
    sqlx::query(
        "INSERT INTO guest_companions (guest_id, companion_id, organization_id, relationship, added_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(link.guest_id.as_uuid())
    .bind(link.companion_id.as_uuid())
    .bind(a.tenancy.organization_id.as_uuid())
    .bind(link.relationship.clone())
    .bind(link.added_at)
    .execute(&mut *tx)
    .await
    .map_err(on_write)?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn companions(
    pool: &PgPool,
    scope: &Scope,
    guest: GuestId,
) -> Result<Vec<Companion>> {
    let mut tx = scoped_tx(pool, scope).await?;
    get_in(&mut tx, scope, guest).await?;
    let rows = sqlx::query(
        "SELECT guest_id, companion_id, relationship, added_at FROM guest_companions
         WHERE guest_id = $1 OR companion_id = $1 ORDER BY added_at",
    )
    .bind(guest.as_uuid())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let link = Companion {
            guest_id: row.try_get::<Uuid, _>("guest_id")?.into(),
            companion_id: row.try_get::<Uuid, _>("companion_id")?.into(),
            relationship: row.try_get("relationship")?,
            added_at: row.try_get("added_at")?,
        };
        out.extend(link.seen_from(guest));
    }
    Ok(out)
}
