//! Decoding rows into the model (and the column lists that go with it).

use chrono::{DateTime, Duration, Utc};
use hse_core::value::{Email, Metadata};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::codes::{CodeState, DoorCodeRecord};
use crate::confirmation::ConfirmationCode;
use crate::door_code::DoorCode;
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingStatus, Cancellation, Guest, Owner};
use crate::notification::{ChannelKind, Notification, NotificationKind, NotificationStatus};
use crate::policy::Grace;
use crate::window::BookingWindow;

pub(super) const GUEST_COLUMNS: &str = "g.id, g.organization_id, o.partner_company_id, g.first_name, \
    g.last_name, g.email, g.phone, g.document_type, g.document_number, g.country, g.metadata, \
    g.created_at, g.updated_at";

pub(super) const BOOKING_COLUMNS: &str = "b.id, b.organization_id, o.partner_company_id, \
    b.establishment_id, b.area_id, b.guest_id, b.check_in, b.check_out, b.blocked_until, b.status, \
    b.confirmation_code, b.special_requests, b.total_guests, b.metadata, b.created_by, b.created_at, \
    b.updated_at, b.cancelled_at, b.cancelled_by, b.cancellation_reason";

pub(super) const CODE_COLUMNS: &str = "d.id, d.booking_id, d.organization_id, o.partner_company_id, \
    d.establishment_id, d.area_id, d.device_id, d.code, d.valid_from, d.valid_until, \
    d.early_grace_minutes, d.late_grace_minutes, d.state, d.failure_reason, d.attempts, \
    d.next_attempt_at, d.usage_count, d.max_usages, d.lock_cap, d.version, d.created_at, d.updated_at";

pub(super) const NOTIFICATION_COLUMNS: &str = "n.id, n.organization_id, o.partner_company_id, \
    n.booking_id, n.guest_id, n.kind, n.channel, n.recipient, n.subject, n.message, n.status, \
    n.attempts, n.next_attempt_at, n.last_error, n.sent_at, n.created_at";

fn owner(row: &PgRow) -> Result<Owner> {
    Ok(Owner {
        partner_company_id: row
            .try_get::<Option<Uuid>, _>("partner_company_id")?
            .map(Into::into),
        organization_id: row.try_get::<Uuid, _>("organization_id")?.into(),
    })
}

fn metadata(row: &PgRow) -> Result<Metadata> {
    Ok(Metadata::parse(row.try_get("metadata")?)?)
}

fn count(row: &PgRow, column: &str) -> Result<u32> {
    let v: i32 = row.try_get(column)?;
    u32::try_from(v).map_err(|_| BookingError::Storage(format!("negative {column}")))
}

pub(super) fn guest(row: &PgRow) -> Result<Guest> {
    let email: Option<String> = row.try_get("email")?;
    Ok(Guest {
        id: row.try_get::<Uuid, _>("id")?.into(),
        tenancy: owner(row)?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        email: email.as_deref().map(Email::parse).transpose()?,
        phone: row.try_get("phone")?,
        document_type: row.try_get("document_type")?,
        document_number: row.try_get("document_number")?,
        country: row.try_get("country")?,
        metadata: metadata(row)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn booking(row: &PgRow) -> Result<Booking> {
    let cancelled_at: Option<DateTime<Utc>> = row.try_get("cancelled_at")?;
    let cancelled_by: Option<Uuid> = row.try_get("cancelled_by")?;
    let reason: Option<String> = row.try_get("cancellation_reason")?;
    let cancellation = cancelled_at.zip(cancelled_by).map(|(at, by)| Cancellation {
        at,
        by: by.into(),
        reason: reason.unwrap_or_default(),
    });
    let total: i16 = row.try_get("total_guests")?;
    Ok(Booking {
        id: row.try_get::<Uuid, _>("id")?.into(),
        tenancy: owner(row)?,
        establishment_id: row.try_get::<Uuid, _>("establishment_id")?.into(),
        area_id: row.try_get::<Uuid, _>("area_id")?.into(),
        guest_id: row.try_get::<Uuid, _>("guest_id")?.into(),
        window: BookingWindow::new(row.try_get("check_in")?, row.try_get("check_out")?)?,
        blocked_until: row.try_get("blocked_until")?,
        status: BookingStatus::parse(row.try_get("status")?)?,
        confirmation_code: ConfirmationCode::parse(row.try_get("confirmation_code")?)?,
        special_requests: row.try_get("special_requests")?,
        total_guests: u16::try_from(total)
            .map_err(|_| BookingError::Storage("total_guests".into()))?,
        metadata: metadata(row)?,
        created_by: row.try_get::<Uuid, _>("created_by")?.into(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        cancellation,
    })
}

pub(super) fn code(row: &PgRow) -> Result<DoorCodeRecord> {
    let max_usages: Option<i32> = row.try_get("max_usages")?;
    let grace = Grace {
        early: Duration::minutes(row.try_get::<i32, _>("early_grace_minutes")?.into()),
        late: Duration::minutes(row.try_get::<i32, _>("late_grace_minutes")?.into()),
    };
    Ok(DoorCodeRecord {
        id: row.try_get::<Uuid, _>("id")?.into(),
        booking_id: row
            .try_get::<Option<Uuid>, _>("booking_id")?
            .map(Into::into),
        tenancy: owner(row)?,
        establishment_id: row.try_get::<Uuid, _>("establishment_id")?.into(),
        area_id: row.try_get::<Uuid, _>("area_id")?.into(),
        device_id: row.try_get::<Uuid, _>("device_id")?.into(),
        code: DoorCode::parse(row.try_get("code")?)?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        grace,
        state: CodeState::parse(row.try_get("state")?)?,
        failure_reason: row.try_get("failure_reason")?,
        attempts: count(row, "attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        usage_count: count(row, "usage_count")?,
        max_usages: max_usages.and_then(|m| u32::try_from(m).ok()),
        lock_cap: count(row, "lock_cap")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn notification(row: &PgRow) -> Result<Notification> {
    Ok(Notification {
        id: row.try_get::<Uuid, _>("id")?.into(),
        tenancy: owner(row)?,
        booking_id: row
            .try_get::<Option<Uuid>, _>("booking_id")?
            .map(Into::into),
        guest_id: row.try_get::<Uuid, _>("guest_id")?.into(),
        kind: NotificationKind::parse(row.try_get("kind")?)?,
        channel: ChannelKind::parse(row.try_get("channel")?)?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        message: row.try_get("message")?,
        status: NotificationStatus::parse(row.try_get("status")?)?,
        attempts: count(row, "attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        sent_at: row.try_get("sent_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Minutes of a duration, for integer columns.
pub(super) fn minutes(d: Duration) -> i32 {
    i32::try_from(d.num_minutes()).unwrap_or(i32::MAX)
}

/// A `u32` for an integer column.
pub(super) fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
