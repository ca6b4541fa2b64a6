//! In-memory adapter of [`BookingStore`]: the embedded default and a test
//! double. Every method runs under one lock, which gives the same
//! guarantees as the PostgreSQL constraints (no overlaps, unique codes,
//! capped codes, conditional moves).

mod state;

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::{AreaId, DeviceId, Listing, Page, Scope};

use crate::codes::{self, DoorCodeRecord};
use crate::error::{BookingError, Result};
use crate::model::{
    Booking, BookingId, BookingStatus, Companion, DoorCodeId, Guest, GuestId, GuestPatch,
};
use crate::notification::{Notification, NotificationStatus};
use crate::store::{BookingFilter, BookingStore, DeleteCheck, Edit, StayMoves};
use crate::window::Blocked;

use state::{State, blocked, guest_resource, page_of};

/// The in-memory [`BookingStore`].
///
/// Nothing is durable: for trying the SDK, tests and demos; the same
/// [`crate::Bookings`] runs over `hse_booking::postgres::PgBookingStore` (feature
/// `postgres`) in production. See `examples/embed_sdk.rs`.
#[derive(Debug, Default)]
pub struct MemoryBookingStore {
    state: Mutex<State>,
}

impl MemoryBookingStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl BookingStore for MemoryBookingStore {
    async fn insert_guest(&self, scope: &Scope, guest: &Guest) -> Result<()> {
        if !scope.contains(&guest_resource(guest)) {
            return Err(BookingError::not_found("organization"));
        }
        self.lock().guests.insert(guest.id, guest.clone());
        Ok(())
    }

    async fn guest(&self, scope: &Scope, id: GuestId) -> Result<Guest> {
        self.lock().guest(scope, id).cloned()
    }

    async fn list_guests(&self, scope: &Scope, page: Page) -> Result<Listing<Guest>> {
        let state = self.lock();
        let visible = state
            .guests
            .values()
            .filter(|g| scope.contains(&guest_resource(g)))
            .cloned();
        Ok(page_of(visible, page, |g| g.id.as_uuid()))
    }

    async fn update_guest(
        &self,
        scope: &Scope,
        id: GuestId,
        patch: GuestPatch,
        now: DateTime<Utc>,
    ) -> Result<Guest> {
        let mut state = self.lock();
        let mut guest = state.guest(scope, id)?.clone();
        patch.apply(&mut guest, now)?;
        state.guests.insert(id, guest.clone());
        Ok(guest)
    }

    async fn add_companion(&self, scope: &Scope, link: &Companion) -> Result<()> {
        let mut state = self.lock();
        let a = state.guest(scope, link.guest_id)?.tenancy;
        let b = state.guest(scope, link.companion_id)?.tenancy;
        if a.organization_id != b.organization_id || link.guest_id == link.companion_id {
            return Err(BookingError::invalid(
                "companion_id",
                "must be another guest of the same organization",
            ));
        }
        let linked = state.companions.iter().any(|c| {
            (c.guest_id, c.companion_id) == (link.guest_id, link.companion_id)
                || (c.guest_id, c.companion_id) == (link.companion_id, link.guest_id)
        });
        if linked {
            return Err(BookingError::AlreadyExists {
                entity: "companion",
            });
        }
        state.companions.push(link.clone());
        Ok(())
    }

    async fn companions(&self, scope: &Scope, guest: GuestId) -> Result<Vec<Companion>> {
        let state = self.lock();
        state.guest(scope, guest)?;
        Ok(state
            .companions
            .iter()
            .filter_map(|c| c.seen_from(guest))
            .collect())
    }

    async fn insert_booking(
        &self,
        scope: &Scope,
        booking: &Booking,
        outbox: &[Notification],
    ) -> Result<()> {
        if !scope.contains(&booking.resource()) {
            return Err(BookingError::not_found("area"));
        }
        let mut state = self.lock();
        state.guest_of(scope, booking)?;
        if state
            .bookings
            .values()
            .any(|b| b.confirmation_code == booking.confirmation_code)
        {
            return Err(BookingError::AlreadyExists {
                entity: "confirmation_code",
            });
        }
        state.check_overlap(booking)?;
        state.write(booking.clone(), outbox, Vec::new());
        Ok(())
    }

    async fn booking(&self, scope: &Scope, id: BookingId) -> Result<Booking> {
        self.lock().booking(scope, id).cloned()
    }

    async fn list_bookings(
        &self,
        scope: &Scope,
        filter: BookingFilter,
        page: Page,
    ) -> Result<Listing<Booking>> {
        let state = self.lock();
        let visible = state
            .bookings
            .values()
            .filter(|b| scope.contains(&b.resource()))
            .filter(|b| filter.area_id.is_none_or(|a| a == b.area_id))
            .filter(|b| filter.guest_id.is_none_or(|g| g == b.guest_id))
            .cloned();
        Ok(page_of(visible, page, |b| b.id.as_uuid()))
    }

    async fn blocked(
        &self,
        scope: &Scope,
        area: AreaId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Blocked>> {
        let state = self.lock();
        Ok(state
            .bookings
            .values()
            .filter(|b| b.area_id == area && b.status.is_active() && scope.contains(&b.resource()))
            .map(blocked)
            .filter(|r| r.start < until && from < r.end)
            .collect())
    }

    async fn update_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        edit: Edit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let mut state = self.lock();
        let current = state.booking(scope, id)?;
        let change = edit(current)?;
        let booking = change.booking;
        state.guest_of(scope, &booking)?;
        state.check_overlap(&booking)?;
        let codes = state.follow(id, Some(&booking), now)?;
        state.write(booking.clone(), &change.outbox, codes);
        Ok(booking)
    }

    async fn delete_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        check: DeleteCheck<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut state = self.lock();
        check(state.booking(scope, id)?)?;
        let codes = state.follow(id, None, now)?;
        state.bookings.remove(&id);
        for mut c in codes {
            c.booking_id = None;
            state.codes.insert(c.id, c);
        }
        for c in state
            .codes
            .values_mut()
            .filter(|c| c.booking_id == Some(id))
        {
            c.booking_id = None;
        }
        for n in state
            .outbox
            .values_mut()
            .filter(|n| n.booking_id == Some(id))
        {
            n.booking_id = None;
        }
        Ok(())
    }

    async fn insert_code(
        &self,
        code: &DoorCodeRecord,
        cap: u32,
        outbox: &[Notification],
    ) -> Result<()> {
        let mut state = self.lock();
        let wants = code
            .booking_id
            .and_then(|id| state.bookings.get(&id))
            .is_some_and(|b| codes::wants_codes(b.status) && b.area_id == code.area_id);
        if !wants {
            return Err(BookingError::not_found("booking"));
        }
        state.check_cap(code, cap)?;
        if state.clashes(code) {
            return Err(BookingError::AlreadyExists {
                entity: "door_code",
            });
        }
        state.codes.insert(code.id, code.clone());
        state.queue(outbox);
        Ok(())
    }

    async fn codes_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<DoorCodeRecord>> {
        let state = self.lock();
        state.booking(scope, booking)?;
        Ok(state
            .codes
            .values()
            .filter(|c| c.booking_id == Some(booking))
            .cloned()
            .collect())
    }

    async fn claim_codes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<DoorCodeRecord>> {
        let mut state = self.lock();
        let due: Vec<DoorCodeId> = state
            .codes
            .values()
            .filter(|c| c.state.is_live() && c.next_attempt_at.is_some_and(|t| t <= now))
            .take(limit as usize)
            .map(|c| c.id)
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            if let Some(c) = state.codes.get_mut(&id) {
                *c = codes::claimed(c, now, lease);
                claimed.push(c.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish_code(&self, next: &DoorCodeRecord) -> Result<bool> {
        let mut state = self.lock();
        match state.codes.get_mut(&next.id) {
            Some(c) if c.version == next.version => {
                *c = next.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_code_use(
        &self,
        device: DeviceId,
        code: DoorCodeId,
        now: DateTime<Utc>,
    ) -> Result<DoorCodeRecord> {
        let mut state = self.lock();
        let c = state
            .codes
            .get_mut(&code)
            .filter(|c| c.device_id == device)
            .ok_or_else(|| BookingError::not_found("door_code"))?;
        c.usage_count = c.usage_count.saturating_add(1);
        c.updated_at = now;
        if c.max_usages.is_some_and(|m| c.usage_count >= m)
            && let Some(retired) = codes::retire(c, now)
        {
            *c = retired;
        }
        Ok(c.clone())
    }

    async fn advance_stays(&self, now: DateTime<Utc>, limit: u32) -> Result<StayMoves> {
        let mut state = self.lock();
        let mut moves = StayMoves::default();
        let due = |b: &Booking, status, at: DateTime<Utc>| b.status == status && at <= now;
        let ins: Vec<_> = state
            .bookings
            .values()
            .filter(|b| due(b, BookingStatus::Confirmed, b.window.check_in()))
            .take(limit as usize)
            .map(|b| b.id)
            .collect();
        for id in ins {
            if let Some(b) = state.bookings.get_mut(&id) {
                b.status = BookingStatus::InProgress;
                b.updated_at = now;
                moves.checked_in.push(id);
            }
        }
        let outs: Vec<_> = state
            .bookings
            .values()
            .filter(|b| due(b, BookingStatus::InProgress, b.window.check_out()))
            .take(limit as usize)
            .map(|b| b.id)
            .collect();
        for id in outs {
            let Some(b) = state.bookings.get_mut(&id) else {
                continue;
            };
            b.status = BookingStatus::Completed;
            b.updated_at = now;
            let after = b.clone();
            let codes = state.follow(id, Some(&after), now)?;
            for c in codes {
                state.codes.insert(c.id, c);
            }
            moves.checked_out.push(id);
        }
        Ok(moves)
    }

    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for n in state.outbox.values_mut() {
            if claimed.len() >= limit as usize {
                break;
            }
            if n.status == NotificationStatus::Pending
                && n.next_attempt_at.is_some_and(|t| t <= now)
            {
                n.next_attempt_at = Some(now + lease);
                claimed.push(n.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish_notification(&self, next: &Notification) -> Result<()> {
        self.lock().outbox.insert(next.id, next.clone());
        Ok(())
    }

    async fn notifications_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<Notification>> {
        let state = self.lock();
        state.booking(scope, booking)?;
        Ok(state
            .outbox
            .values()
            .filter(|n| n.booking_id == Some(booking))
            .cloned()
            .collect())
    }
}
