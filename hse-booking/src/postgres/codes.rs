//! Door codes: issuance under a per-lock advisory lock (the cap), the
//! exclusion constraint (uniqueness), claims and version-checked results.

use chrono::{DateTime, Duration, Utc};
use hse_core::postgres::system_tx;
use hse_core::{DeviceId, Scope};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::rows::{self, CODE_COLUMNS, int, minutes};
use super::statements;
use super::violation::on_write;
use super::{bookings, collect, outbox};
use crate::codes::{self, DoorCodeRecord};
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingId, DoorCodeId};
use crate::notification::Notification;

pub(super) async fn insert(
    pool: &PgPool,
    code: &DoorCodeRecord,
    cap: u32,
    outbox: &[Notification],
) -> Result<()> {
    let mut tx = system_tx(pool).await?;
    let wants: Option<bool> = sqlx::query_scalar(statements::LOCK_BOOKING_FOR_CODE)
        .bind(code.booking_id.map(|b| b.as_uuid()))
        .bind(code.area_id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
    if wants != Some(true) {
        return Err(BookingError::not_found("booking"));
    }
    check_cap(&mut tx, code, cap).await?;
    insert_row(&mut tx, code).await.map_err(on_write)?;
    outbox::insert(&mut tx, outbox).await.map_err(on_write)?;
    tx.commit().await?;
    Ok(())
}

/// Takes the lock's advisory lock (held to commit, so issuances and
/// reprogrammings on one lock are serialized) and counts its other live
/// codes overlapping `code`.
async fn check_cap(
    tx: &mut Transaction<'_, Postgres>,
    code: &DoorCodeRecord,
    cap: u32,
) -> Result<()> {
    sqlx::query(statements::LOCK_DOOR_LOCK)
        .bind(code.device_id.as_uuid())
        .execute(&mut **tx)
        .await?;
    let live: i64 = sqlx::query_scalar(statements::COUNT_LIVE_CODES)
        .bind(code.device_id.as_uuid())
        .bind(code.valid_from)
        .bind(code.valid_until)
        .bind(code.id.as_uuid())
        .fetch_one(&mut **tx)
        .await?;
    if live >= i64::from(cap) {
        return Err(BookingError::CodeCapReached {
            device: code.device_id,
            max: cap,
        });
    }
    Ok(())
}

pub(super) async fn of_booking(
    pool: &PgPool,
    scope: &Scope,
    booking: BookingId,
) -> Result<Vec<DoorCodeRecord>> {
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM door_codes d JOIN organizations o ON o.id = d.organization_id
         WHERE d.booking_id = $1 ORDER BY d.id"
    );
    bookings::rows_of(pool, scope, booking, &sql, rows::code).await
}

pub(super) async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: Duration,
    limit: u32,
) -> Result<Vec<DoorCodeRecord>> {
    let sql = format!(
        "WITH due AS (
             SELECT id FROM door_codes
             WHERE next_attempt_at <= $1 AND state NOT IN ('removed', 'failed')
             ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE door_codes d SET next_attempt_at = $2,
                 state = CASE WHEN d.state = 'pending' THEN 'programming' ELSE d.state END
             FROM due WHERE d.id = due.id RETURNING d.*)
         SELECT {CODE_COLUMNS} FROM claimed d JOIN organizations o ON o.id = d.organization_id"
    );
    let mut tx = system_tx(pool).await?;
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(now + lease)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    collect(&rows, rows::code)
}

pub(super) async fn finish(pool: &PgPool, next: &DoorCodeRecord) -> Result<bool> {
    let mut tx = system_tx(pool).await?;
    let done = store(&mut tx, next, Some(next.version))
        .await
        .map_err(on_write)?;
    tx.commit().await?;
    Ok(done)
}

pub(super) async fn record_use(
    pool: &PgPool,
    device: DeviceId,
    code: DoorCodeId,
    now: DateTime<Utc>,
) -> Result<DoorCodeRecord> {
    let mut tx = system_tx(pool).await?;
    let mut c = locked_where(&mut tx, "d.id = $1", code.as_uuid())
        .await?
        .into_iter()
        .find(|c| c.device_id == device)
        .ok_or_else(|| BookingError::not_found("door_code"))?;
    c.usage_count = c.usage_count.saturating_add(1);
    c.updated_at = now;
    if c.max_usages.is_some_and(|m| c.usage_count >= m)
        && let Some(retired) = codes::retire(&c, now)
    {
        c = retired;
    }
    store(&mut tx, &c, None).await.map_err(on_write)?;
    tx.commit().await?;
    Ok(c)
}

/// Stores the mutable columns of a code (optionally only at `version`).
async fn store(
    tx: &mut Transaction<'_, Postgres>,
    c: &DoorCodeRecord,
    at_version: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE door_codes SET valid_from = $2, valid_until = $3, state = $4, failure_reason = $5,
             attempts = $6, next_attempt_at = $7, usage_count = $8, version = $9, updated_at = $10
         WHERE id = $1 AND ($11::bigint IS NULL OR version = $11)",
    )
    .bind(c.id.as_uuid())
    .bind(c.valid_from)
    .bind(c.valid_until)
    .bind(c.state.as_str())
    .bind(c.failure_reason.clone())
    .bind(int(c.attempts))
    .bind(c.next_attempt_at)
    .bind(int(c.usage_count))
    .bind(c.version)
    .bind(c.updated_at)
    .bind(at_version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn locked_where(
    tx: &mut Transaction<'_, Postgres>,
    condition: &str,
    id: Uuid,
) -> Result<Vec<DoorCodeRecord>> {
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM door_codes d JOIN organizations o ON o.id = d.organization_id
         WHERE {condition} FOR UPDATE OF d"
    );
    let rows = sqlx::query(&sql).bind(id).fetch_all(&mut **tx).await?;
    rows.iter().map(rows::code).collect()
}

/// Makes a booking's codes follow its change (`None`: deleted).
pub(super) async fn follow(
    tx: &mut Transaction<'_, Postgres>,
    id: BookingId,
    after: Option<&Booking>,
    now: DateTime<Utc>,
) -> Result<()> {
    for code in locked_where(tx, "d.booking_id = $1", id.as_uuid()).await? {
        if let Some(next) = codes::follow_booking(&code, after, now) {
            if next.state.is_wanted() {
                check_cap(tx, &next, next.lock_cap).await?;
            }
            store_or_retire(tx, &code, &next, now).await?;
        }
    }
    Ok(())
}

/// Stores `next`; if its new window clashes with an equal live code on the
/// lock (the exclusion constraint, caught at a savepoint), retires `code`
/// instead so the service issues a fresh one.
async fn store_or_retire(
    tx: &mut Transaction<'_, Postgres>,
    code: &DoorCodeRecord,
    next: &DoorCodeRecord,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    match store(&mut savepoint, next, None).await.map_err(on_write) {
        Ok(_) => Ok(savepoint.commit().await?),
        Err(BookingError::AlreadyExists { .. }) => {
            savepoint.rollback().await?;
            match codes::retire(code, now) {
                Some(retired) => store(tx, &retired, None)
                    .await
                    .map(|_| ())
                    .map_err(on_write),
                None => Ok(()),
            }
        }
        Err(e) => Err(e),
    }
}

async fn insert_row(
    tx: &mut Transaction<'_, Postgres>,
    c: &DoorCodeRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(statements::INSERT_CODE)
        .bind(c.id.as_uuid())
        .bind(c.booking_id.map(|b| b.as_uuid()))
        .bind(c.tenancy.organization_id.as_uuid())
        .bind(c.establishment_id.as_uuid())
        .bind(c.area_id.as_uuid())
        .bind(c.device_id.as_uuid())
        .bind(c.code.expose().to_owned())
        .bind(c.valid_from)
        .bind(c.valid_until)
        .bind(minutes(c.grace.early))
        .bind(minutes(c.grace.late))
        .bind(c.state.as_str())
        .bind(c.failure_reason.clone())
        .bind(int(c.attempts))
        .bind(c.next_attempt_at)
        .bind(int(c.usage_count))
        .bind(c.max_usages.map(int))
        .bind(int(c.lock_cap))
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
