//! The in-memory state and the checks that make the guarantees: every
//! method of [`MemoryBookingStore`](super::MemoryBookingStore) runs them under one lock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hse_core::{Listing, Page, Resource, Scope};

use crate::codes::{self, DoorCodeRecord};
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingId, Companion, DoorCodeId, Guest, GuestId, NotificationId};
use crate::notification::Notification;
use crate::window::Blocked;

/// Everything the store holds.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) guests: BTreeMap<GuestId, Guest>,
    pub(super) companions: Vec<Companion>,
    pub(super) bookings: BTreeMap<BookingId, Booking>,
    pub(super) codes: BTreeMap<DoorCodeId, DoorCodeRecord>,
    pub(super) outbox: BTreeMap<NotificationId, Notification>,
}

pub(super) fn guest_resource(g: &Guest) -> Resource {
    Resource::organization(g.tenancy.partner_company_id, g.tenancy.organization_id)
}

pub(super) fn blocked(b: &Booking) -> Blocked {
    Blocked {
        start: b.window.check_in(),
        end: b.blocked_until,
    }
}

impl State {
    pub(super) fn guest(&self, scope: &Scope, id: GuestId) -> Result<&Guest> {
        self.guests
            .get(&id)
            .filter(|g| scope.contains(&guest_resource(g)))
            .ok_or_else(|| BookingError::not_found("guest"))
    }

    pub(super) fn booking(&self, scope: &Scope, id: BookingId) -> Result<&Booking> {
        self.bookings
            .get(&id)
            .filter(|b| scope.contains(&b.resource()))
            .ok_or_else(|| BookingError::not_found("booking"))
    }

    /// The booking's guest, which must be of the booking's organization
    /// (the PostgreSQL schema's composite foreign key).
    pub(super) fn guest_of(&self, scope: &Scope, booking: &Booking) -> Result<&Guest> {
        self.guest(scope, booking.guest_id)
            .ok()
            .filter(|g| g.tenancy.organization_id == booking.tenancy.organization_id)
            .ok_or_else(|| BookingError::not_found("guest"))
    }

    pub(super) fn check_overlap(&self, booking: &Booking) -> Result<()> {
        if !booking.status.is_active() {
            return Ok(());
        }
        let mine = blocked(booking);
        let clash = self.bookings.values().find(|b| {
            b.id != booking.id
                && b.area_id == booking.area_id
                && b.status.is_active()
                && blocked(b).conflicts(&mine)
        });
        match clash {
            Some(b) => Err(BookingError::Overlap { with: b.id }),
            None => Ok(()),
        }
    }

    /// The other live codes on `code`'s lock whose windows overlap it.
    pub(super) fn overlapping<'a>(
        &'a self,
        code: &'a DoorCodeRecord,
    ) -> impl Iterator<Item = &'a DoorCodeRecord> {
        self.codes.values().filter(move |c| {
            c.id != code.id
                && c.device_id == code.device_id
                && c.state.is_live()
                && c.valid_from < code.valid_until
                && code.valid_from < c.valid_until
        })
    }

    /// Whether an equal live code overlaps `code` on its lock.
    pub(super) fn clashes(&self, code: &DoorCodeRecord) -> bool {
        self.overlapping(code).any(|c| c.code == code.code)
    }

    /// Refuses `code` if `cap` live codes already overlap it on its lock.
    pub(super) fn check_cap(&self, code: &DoorCodeRecord, cap: u32) -> Result<()> {
        if self.overlapping(code).count() >= cap as usize {
            return Err(BookingError::CodeCapReached {
                device: code.device_id,
                max: cap,
            });
        }
        Ok(())
    }

    /// The code changes that follow a booking change. A reprogrammed window
    /// must fit the lock's cap (else the change is refused); one that would
    /// clash with an equal live code on its lock is retired instead (the
    /// service then issues a fresh one).
    pub(super) fn follow(
        &self,
        id: BookingId,
        after: Option<&Booking>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DoorCodeRecord>> {
        let mut changes = Vec::new();
        for c in self.codes.values().filter(|c| c.booking_id == Some(id)) {
            let Some(next) = codes::follow_booking(c, after, now) else {
                continue;
            };
            if next.state.is_wanted() {
                self.check_cap(&next, next.lock_cap)?;
            }
            if self.clashes(&next) {
                changes.extend(codes::retire(c, now));
            } else {
                changes.push(next);
            }
        }
        Ok(changes)
    }

    pub(super) fn write(
        &mut self,
        booking: Booking,
        outbox: &[Notification],
        codes: Vec<DoorCodeRecord>,
    ) {
        self.bookings.insert(booking.id, booking);
        self.queue(outbox);
        for c in codes {
            self.codes.insert(c.id, c);
        }
    }

    pub(super) fn queue(&mut self, outbox: &[Notification]) {
        for n in outbox {
            self.outbox.insert(n.id, n.clone());
        }
    }
}

pub(super) fn page_of<T: Clone>(
    items: impl Iterator<Item = T>,
    page: Page,
    id: impl Fn(&T) -> uuid::Uuid,
) -> Listing<T> {
    let items: Vec<T> = items
        .filter(|t| page.after().is_none_or(|a| id(t) > a))
        .take(page.limit() as usize + 1)
        .collect();
    Listing::from_overfetch(items, page, id)
}
