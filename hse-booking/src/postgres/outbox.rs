//! The notification outbox: rows written inside the caller's transaction,
//! claims for the dispatcher, delivery results.

use chrono::{DateTime, Duration, Utc};
use hse_core::Scope;
use hse_core::postgres::system_tx;
use sqlx::{PgPool, Postgres, Transaction};

use super::rows::{self, NOTIFICATION_COLUMNS, int};
use super::{bookings, collect};
use crate::error::Result;
use crate::model::BookingId;
use crate::notification::Notification;

pub(super) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    outbox: &[Notification],
) -> Result<(), sqlx::Error> {
    for n in outbox {
        sqlx::query(
            "INSERT INTO notifications (id, organization_id, booking_id, guest_id, kind, channel, recipient,
                 subject, message, status, attempts, next_attempt_at, last_error, sent_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(n.id.as_uuid())
        .bind(n.tenancy.organization_id.as_uuid())
        .bind(n.booking_id.map(|b| b.as_uuid()))
        .bind(n.guest_id.as_uuid())
        .bind(n.kind.as_str())
        .bind(n.channel.as_str())
        .bind(n.recipient.clone())
        .bind(n.subject.clone())
        .bind(n.message.clone())
        .bind(n.status.as_str())
        .bind(int(n.attempts))
        .bind(n.next_attempt_at)
        .bind(n.last_error.clone())
        .bind(n.sent_at)
        .bind(n.created_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: Duration,
    limit: u32,
) -> Result<Vec<Notification>> {
    let sql = format!(
        "WITH due AS (
             SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE notifications n SET next_attempt_at = $2 FROM due WHERE n.id = due.id RETURNING n.*)
         SELECT {NOTIFICATION_COLUMNS} FROM claimed n JOIN organizations o ON o.id = n.organization_id"
    );
    let mut tx = system_tx(pool).await?;
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(now + lease)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    collect(&rows, rows::notification)
}

pub(super) async fn finish(pool: &PgPool, n: &Notification) -> Result<()> {
    let mut tx = system_tx(pool).await?;
    sqlx::query(
        "UPDATE notifications SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5,
             sent_at = $6 WHERE id = $1",
    )
    .bind(n.id.as_uuid())
    .bind(n.status.as_str())
    .bind(int(n.attempts))
    .bind(n.next_attempt_at)
    .bind(n.last_error.clone())
    .bind(n.sent_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn of_booking(
    pool: &PgPool,
    scope: &Scope,
    booking: BookingId,
) -> Result<Vec<Notification>> {
    let sql = format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications n JOIN organizations o ON o.id = n.organization_id
         WHERE n.booking_id = $1 ORDER BY n.id"
    );
    bookings::rows_of(pool, scope, booking, &sql, rows::notification).await
}
