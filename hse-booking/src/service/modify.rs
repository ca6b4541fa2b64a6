//! Modifying a booking: the patch is checked once against the tenancy and
//! the policy, then applied to the locked row by the store.

use chrono::{DateTime, Utc};
use hse_core::value::Metadata;
use hse_core::{AreaId, Principal, Target};
use tracing::{Level, instrument};

use super::{Bookings, check};
use crate::codes;
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingId, BookingPatch, GuestId, check_requests, check_total_guests};
use crate::notification::NotificationKind;
use crate::status::{self, BookingAction};
use crate::store::Change;
use crate::window::{BookingWindow, Turnover};

/// A checked patch, ready to apply to the current row.
#[derive(Clone, Debug)]
struct Modification {
    area_id: AreaId,
    guest_id: GuestId,
    window: Option<BookingWindow>,
    turnover: Turnover,
    total_guests: Option<u16>,
    special_requests: Option<String>,
    metadata: Option<Metadata>,
}

impl Modification {
    /// `b` with the modification applied (the state machine permitting).
    fn apply(&self, b: &Booking, now: DateTime<Utc>) -> Result<Booking> {
        status::next(b.status, BookingAction::Modify)?;
        let window = self.window.unwrap_or(b.window);
        Ok(Booking {
            area_id: self.area_id,
            guest_id: self.guest_id,
            window,
            blocked_until: self.turnover.blocked_until(&window),
            total_guests: self.total_guests.unwrap_or(b.total_guests),
            special_requests: self
                .special_requests
                .clone()
                .unwrap_or_else(|| b.special_requests.clone()),
            metadata: self.metadata.clone().unwrap_or_else(|| b.metadata.clone()),
            updated_at: now,
            ..b.clone()
        })
    }
}

impl Bookings {
    /// Changes dates, area (same establishment) or guests of a pending or
    /// confirmed booking, under the same overlap rule; codes follow (a new
    /// window reprograms them, a new area moves them to its locks).
    ///
    /// # Errors
    /// `IllegalTransition { from }`, `Overlap { with }`, `NotFound`,
    /// `Denied`, `Invalid`.
    #[instrument(skip_all, fields(booking.id = %id), err(level = Level::DEBUG))]
    pub async fn modify(
        &self,
        p: &Principal,
        id: BookingId,
        patch: BookingPatch,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let current = self.booking_for(p, id, "update_booking").await?;
        status::next(current.status, BookingAction::Modify)?;
        let m = self.check_patch(p, &current, patch).await?;
        let probe = m.apply(&current, now)?;
        let kind = NotificationKind::BookingModified;
        let out = self.notify(kind, &probe, &p.scope(), now).await?;
        let edit = move |b: &Booking| -> Result<Change> {
            let booking = m.apply(b, now)?;
            Ok(Change {
                booking,
                outbox: out.clone(),
            })
        };
        let booking = self
            .store
            .update_booking(&p.scope(), id, &edit, now)
            .await?;
        // A new area's locks, or a code retired on a clash, need new codes.
        if codes::wants_codes(booking.status) {
            self.issue_codes(p, id, now).await?;
        }
        Ok(booking)
    }

    /// Validates a patch of `current` against the tenancy and policy.
    async fn check_patch(
        &self,
        p: &Principal,
        current: &Booking,
        patch: BookingPatch,
    ) -> Result<Modification> {
        let scope = p.scope();
        let area_id = patch.area_id.unwrap_or(current.area_id);
        let area = self.locate(Target::Area(area_id), "area").await?;
        if area.establishment_id != Some(current.establishment_id) {
            let reason = "must be in the booking's establishment";
            return Err(BookingError::invalid("area_id", reason));
        }
        check(p, "update_booking", &area, "area")?;
        let (est, policy) = self.establishment(&scope, &area).await?;
        if let Some(g) = patch.guest_id {
            let guest = self.store.guest(&scope, g).await?;
            if guest.tenancy.organization_id != current.tenancy.organization_id {
                return Err(BookingError::not_found("guest"));
            }
        }
        Ok(Modification {
            area_id,
            guest_id: patch.guest_id.unwrap_or(current.guest_id),
            window: patch
                .stay
                .map(|s| Self::window(&est, &policy, s))
                .transpose()?,
            turnover: policy.turnover,
            total_guests: patch.total_guests.map(check_total_guests).transpose()?,
            special_requests: patch
                .special_requests
                .as_deref()
                .map(check_requests)
                .transpose()?,
            metadata: patch.metadata,
        })
    }
}
