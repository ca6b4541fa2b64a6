//! Bookings: writes that retry when the booking they overlapped has gone,
//! reads in scope, and the conditional moves of the stay worker.

use chrono::{DateTime, Utc};
use hse_core::postgres::{scoped_tx, system_tx};
use hse_core::{AreaId, Listing, Page, Scope};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::rows::{self, BOOKING_COLUMNS};
use super::scope::{Q, in_scope, scoped};
use super::statements;
use super::violation::{OVERLAP_RETRIES, WriteError};
use super::{codes, collect, outbox};
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingId};
use crate::notification::Notification;
use crate::store::{BookingFilter, DeleteCheck, Edit, StayMoves};
use crate::window::Blocked;

pub(super) async fn insert(
    pool: &PgPool,
    scope: &Scope,
    booking: &Booking,
    outbox: &[Notification],
) -> Result<()> {
    if !scope.contains(&booking.resource()) {
        return Err(BookingError::not_found("area"));
    }
    with_overlap(pool, scope, || async {
        try_insert(pool, scope, booking, outbox)
            .await
            .map_err(|e| (e, Some(booking.clone())))
    })
    .await
}

pub(super) async fn get(pool: &PgPool, scope: &Scope, id: BookingId) -> Result<Booking> {
    let mut tx = scoped_tx(pool, scope).await?;
    let booking = get_in(&mut tx, scope, id).await?;
    tx.commit().await?;
    Ok(booking)
}

/// [`get`] in a transaction open in `scope`.
async fn get_in(tx: &mut PgConnection, scope: &Scope, id: BookingId) -> Result<Booking> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN organizations o ON o.id = b.organization_id
         WHERE b.id = $5 AND {}",
        in_scope!("b")
    );
    let row = scoped(&sql, scope)
        .bind(id.as_uuid())
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| BookingError::not_found("booking"))?;
    rows::booking(&row)
}

pub(super) async fn list(
    pool: &PgPool,
    scope: &Scope,
    filter: BookingFilter,
    page: Page,
) -> Result<Listing<Booking>> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN organizations o ON o.id = b.organization_id
         WHERE {} AND ($5::uuid IS NULL OR b.area_id = $5) AND ($6::uuid IS NULL OR b.guest_id = $6)
           AND ($7::uuid IS NULL OR b.id > $7) ORDER BY b.id LIMIT $8",
        in_scope!("b")
    );
    let mut tx = scoped_tx(pool, scope).await?;
    let rows = scoped(&sql, scope)
        .bind(filter.area_id.map(|a| a.as_uuid()))
        .bind(filter.guest_id.map(|g| g.as_uuid()))
        .bind(page.after())
        .bind(i64::from(page.limit()) + 1)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Listing::from_overfetch(
        collect(&rows, rows::booking)?,
        page,
        |b| b.id.as_uuid(),
    ))
}

pub(super) async fn blocked(
    pool: &PgPool,
    scope: &Scope,
    area: AreaId,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Blocked>> {
    let sql = format!(
        "SELECT b.check_in, b.blocked_until FROM bookings b JOIN organizations o ON o.id = b.organization_id
         WHERE {} AND b.area_id = $5 AND b.status <> 'cancelled'
           AND tstzrange(b.check_in, b.blocked_until, '[)') && tstzrange($6, $7, '[)')
         ORDER BY b.check_in",
        in_scope!("b")
    );
    let mut tx = scoped_tx(pool, scope).await?;
    let rows = scoped(&sql, scope)
        .bind(area.as_uuid())
        .bind(from)
        .bind(until)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(Blocked {
                start: r.try_get("check_in")?,
                end: r.try_get("blocked_until")?,
            })
        })
        .collect()
}

pub(super) async fn update(
    pool: &PgPool,
    scope: &Scope,
    id: BookingId,
    edit: Edit<'_>,
    now: DateTime<Utc>,
) -> Result<Booking> {
    with_overlap(pool, scope, || try_update(pool, scope, id, edit, now)).await
}

pub(super) async fn delete(
    pool: &PgPool,
    scope: &Scope,
    id: BookingId,
    check: DeleteCheck<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    let current = lock_booking(&mut tx, scope, id).await?;
    check(&current)?;
    codes::follow(&mut tx, id, None, now).await?;
    sqlx::query("DELETE FROM bookings WHERE id = $1")
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn advance_stays(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<StayMoves> {
    let mut tx = system_tx(pool).await?;
    let checked_in =
        move_stays(&mut tx, "confirmed", "in-progress", "check_in", now, limit).await?;
    let checked_out =
        move_stays(&mut tx, "in-progress", "completed", "check_out", now, limit).await?;
    sqlx::query(
        "UPDATE door_codes SET state = 'removing', attempts = 0, next_attempt_at = $2,
             version = version + 1, updated_at = $2
         WHERE booking_id = ANY($1) AND state IN ('pending', 'programming', 'active')",
    )
    .bind(&checked_out)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StayMoves {
        checked_in: checked_in.into_iter().map(Into::into).collect(),
        checked_out: checked_out.into_iter().map(Into::into).collect(),
    })
}

/// Moves up to `limit` bookings in `from` whose `due` instant has come to
/// `to`; rows another worker holds are skipped, and the state is checked
/// again on the locked row, so each booking moves once.
async fn move_stays(
    tx: &mut Transaction<'_, Postgres>,
    from: &str,
    to: &str,
    due: &str,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Uuid>> {
    let sql = format!(
        "UPDATE bookings SET status = $3, updated_at = $1
         WHERE id IN (SELECT id FROM bookings WHERE status = $4 AND {due} <= $1
                      ORDER BY {due} LIMIT $2 FOR UPDATE SKIP LOCKED)
           AND status = $4
         RETURNING id"
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(now)
        .bind(i64::from(limit))
        .bind(to)
        .bind(from)
        .fetch_all(&mut **tx)
        .await?)
}

/// The active booking of `b`'s area that conflicts with it, if any.
async fn conflicting(pool: &PgPool, scope: &Scope, b: &Booking) -> Result<Option<BookingId>> {
    let mut tx = scoped_tx(pool, scope).await?;
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM bookings WHERE area_id = $1 AND id <> $2 AND status <> 'cancelled'
           AND tstzrange(check_in, blocked_until, '[)') && tstzrange($3, $4, '[)')
         ORDER BY check_in LIMIT 1",
    )
    .bind(b.area_id.as_uuid())
    .bind(b.id.as_uuid())
    .bind(b.window.check_in())
    .bind(b.blocked_until)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id.map(Into::into))
}

/// The rows `sql` selects for a booking in scope (`$1`: its id).
pub(super) async fn rows_of<T>(
    pool: &PgPool,
    scope: &Scope,
    booking: BookingId,
    sql: &str,
    decode: fn(&PgRow) -> Result<T>,
) -> Result<Vec<T>> {
    let mut tx = scoped_tx(pool, scope).await?;
    get_in(&mut tx, scope, booking).await?;
    let rows = sqlx::query(sql)
        .bind(booking.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    collect(&rows, decode)
}

/// Runs `write` until it succeeds or fails for a reason other than an
/// overlap whose other booking has gone meanwhile or a rollback PostgreSQL
/// chose (deadlock victim, serialization failure).
async fn with_overlap<T, F, Fut>(pool: &PgPool, scope: &Scope, write: F) -> Result<T>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<T, (WriteError, Option<Booking>)>> + Send,
    T: Send,
{
    for _ in 0..OVERLAP_RETRIES {
        match write().await {
            Ok(v) => return Ok(v),
            Err((WriteError::Other(e), _)) => return Err(e),
            Err((WriteError::Retry, _)) => {}
            Err((WriteError::Overlap, booking)) => {
                let Some(b) = booking else {
                    return Err(BookingError::Storage("overlap without a booking".into()));
                };
                if let Some(with) = conflicting(pool, scope, &b).await? {
                    return Err(BookingError::Overlap { with });
                }
            }
        }
    }
    Err(BookingError::Storage(
        "the write kept conflicting with concurrent ones".into(),
    ))
}

async fn try_insert(
    pool: &PgPool,
    scope: &Scope,
    booking: &Booking,
    outbox: &[Notification],
) -> Result<(), WriteError> {
    let mut tx = scoped_tx(pool, scope).await?;
    lock_area(&mut tx, booking.area_id).await?;
    booking_query(statements::INSERT_BOOKING, booking)
        .execute(&mut *tx)
        .await?;
    outbox::insert(&mut tx, outbox).await?;
    tx.commit().await?;
    Ok(())
}

async fn try_update(
    pool: &PgPool,
    scope: &Scope,
    id: BookingId,
    edit: Edit<'_>,
    now: DateTime<Utc>,
) -> Result<Booking, (WriteError, Option<Booking>)> {
    let mut tx = scoped_tx(pool, scope).await.map_err(|e| (e.into(), None))?;
    let current = lock_booking(&mut tx, scope, id)
        .await
        .map_err(|e| (e.into(), None))?;
    let change = edit(&current).map_err(|e| (e.into(), None))?;
    let next = change.booking;
    let fail = |e: WriteError| (e, Some(next.clone()));
    lock_area(&mut tx, next.area_id)
        .await
        .map_err(|e| fail(e.into()))?;
    booking_query(
        "UPDATE bookings SET organization_id = $1, establishment_id = $2, area_id = $3, guest_id = $4,
             check_in = $5, check_out = $6, blocked_until = $7, status = $8, confirmation_code = $9,
             special_requests = $10, total_guests = $11, metadata = $12, created_by = $13, created_at = $14,
             updated_at = $15, cancelled_at = $16, cancelled_by = $17, cancellation_reason = $18
         WHERE id = $19",
        &next,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| fail(e.into()))?;
    outbox::insert(&mut tx, &change.outbox)
        .await
        .map_err(|e| fail(e.into()))?;
    codes::follow(&mut tx, id, Some(&next), now)
        .await
        .map_err(|e| fail(e.into()))?;
    tx.commit().await.map_err(|e| fail(e.into()))?;
    Ok(next)
}

/// Queues behind other writes of bookings into `area` until commit.
async fn lock_area(tx: &mut PgConnection, area: AreaId) -> Result<(), sqlx::Error> {
    sqlx::query(statements::LOCK_AREA)
        .bind(area.as_uuid())
        .execute(tx)
        .await?;
    Ok(())
}

fn booking_query<'q>(sql: &'q str, b: &Booking) -> Q<'q> {
    let c = b.cancellation.as_ref();
    sqlx::query(sql)
        .bind(b.tenancy.organization_id.as_uuid())
        .bind(b.establishment_id.as_uuid())
        .bind(b.area_id.as_uuid())
        .bind(b.guest_id.as_uuid())
        .bind(b.window.check_in())
        .bind(b.window.check_out())
        .bind(b.blocked_until)
        .bind(b.status.as_str())
        .bind(b.confirmation_code.as_str().to_owned())
        .bind(b.special_requests.clone())
        .bind(i16::try_from(b.total_guests).unwrap_or(i16::MAX))
        .bind(serde_json::Value::from(b.metadata.clone()))
        .bind(b.created_by.as_uuid())
        .bind(b.created_at)
        .bind(b.updated_at)
        .bind(c.map(|c| c.at))
        .bind(c.map(|c| c.by.as_uuid()))
        .bind(c.map(|c| c.reason.clone()))
        .bind(b.id.as_uuid())
}

async fn lock_booking(
    tx: &mut Transaction<'_, Postgres>,
    scope: &Scope,
    id: BookingId,
) -> Result<Booking> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN organizations o ON o.id = b.organization_id
         WHERE b.id = $5 AND {} FOR UPDATE OF b",
        in_scope!("b")
    );
    let row = scoped(&sql, scope)
        .bind(id.as_uuid())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| BookingError::not_found("booking"))?;
    rows::booking(&row)
}
