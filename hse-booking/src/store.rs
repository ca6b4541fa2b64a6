//! The storage port: what the booking rules need from a database.
//!
//! Scoped methods take the caller's [`Scope`] and treat anything outside it
//! as missing ([`BookingError::NotFound`](crate::BookingError::NotFound)). Methods marked *system path*
//! serve the background workers and lock events and take no scope.
//!
//! Adapters must make these guarantees true under concurrency, not only in
//! sequential use: no two active bookings of an area with overlapping
//! blocked ranges (the conflict is reported with the other booking's id);
//! no two live codes equal on one lock with overlapping validity; at most
//! `cap` live codes on one lock at overlapping times; read-modify-write of a
//! booking is atomic together with its outbox rows and code changes; claims
//! and state moves are conditional, so several processes never double an
//! effect. [`crate::memory::MemoryBookingStore`] does it under one lock, `postgres`
//! with constraints and row locks.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::{AreaId, DeviceId, Listing, Page, Scope};

use crate::codes::DoorCodeRecord;
use crate::error::Result;
use crate::model::{Booking, BookingId, Companion, DoorCodeId, Guest, GuestId, GuestPatch};
use crate::notification::Notification;
use crate::window::Blocked;

/// The new state of a booking and the notifications the change causes.
#[derive(Clone, Debug)]
pub struct Change {
    /// The booking after the change.
    pub booking: Booking,
    /// Outbox rows written in the same transaction.
    pub outbox: Vec<Notification>,
}

/// A pure edit of a booking, run by the store on the locked current row.
pub type Edit<'a> = &'a (dyn Fn(&Booking) -> Result<Change> + Send + Sync);

/// A check a booking must pass before it is deleted.
pub type DeleteCheck<'a> = &'a (dyn Fn(&Booking) -> Result<()> + Send + Sync);

/// Which bookings to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookingFilter {
    /// Only this area's.
    pub area_id: Option<AreaId>,
    /// Only this guest's.
    pub guest_id: Option<GuestId>,
}

/// Bookings moved by one pass of the stay worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StayMoves {
    /// Confirmed → in-progress.
    pub checked_in: Vec<BookingId>,
    /// In-progress → completed.
    pub checked_out: Vec<BookingId>,
}

/// The storage port of hse-booking.
#[async_trait]
pub trait BookingStore: Send + Sync + std::fmt::Debug {
    /// Stores a new guest.
    async fn insert_guest(&self, scope: &Scope, guest: &Guest) -> Result<()>;
    /// One guest in scope.
    async fn guest(&self, scope: &Scope, id: GuestId) -> Result<Guest>;
    /// Guests in scope.
    async fn list_guests(&self, scope: &Scope, page: Page) -> Result<Listing<Guest>>;
    /// Applies `patch` atomically.
    async fn update_guest(
        &self,
        scope: &Scope,
        id: GuestId,
        patch: GuestPatch,
        now: DateTime<Utc>,
    ) -> Result<Guest>;
    /// Links two guests of one organization (stored once, visible from
    /// both); `AlreadyExists` if they are linked either way.
    async fn add_companion(&self, scope: &Scope, link: &Companion) -> Result<()>;
    /// A guest's companions, each seen from `guest`.
    async fn companions(&self, scope: &Scope, guest: GuestId) -> Result<Vec<Companion>>;

    /// Stores a new booking and its outbox rows; `Overlap { with }` if an
    /// active booking of the area conflicts, `AlreadyExists` on a
    /// confirmation-code collision.
    async fn insert_booking(
        &self,
        scope: &Scope,
        booking: &Booking,
        outbox: &[Notification],
    ) -> Result<()>;
    /// One booking in scope.
    async fn booking(&self, scope: &Scope, id: BookingId) -> Result<Booking>;
    /// Bookings in scope.
    async fn list_bookings(
        &self,
        scope: &Scope,
        filter: BookingFilter,
        page: Page,
    ) -> Result<Listing<Booking>>;
    /// The blocked ranges of the area's active bookings meeting `[from, until)`.
    async fn blocked(
        &self,
        scope: &Scope,
        area: AreaId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Blocked>>;
    /// Runs `edit` on the locked booking and stores the result with its
    /// outbox rows; its codes follow the change
    /// ([`crate::codes::follow_booking`]). Same conflicts as insert.
    async fn update_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        edit: Edit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Booking>;
    /// Deletes the booking if `check` passes; its codes are marked for
    /// removal.
    async fn delete_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        check: DeleteCheck<'_>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Stores a new code and its outbox rows if its booking still wants
    /// codes in the code's area. `AlreadyExists` if the same code is live
    /// on the lock at an overlapping time; `CodeCapReached` if `cap` live
    /// codes already overlap its validity. *System path* (the service
    /// checked the booking's scope).
    async fn insert_code(
        &self,
        code: &DoorCodeRecord,
        cap: u32,
        outbox: &[Notification],
    ) -> Result<()>;
    /// A booking's codes.
    async fn codes_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<DoorCodeRecord>>;
    /// Claims up to `limit` codes due at `now` for the programmer worker,
    /// moving their next attempt to `now + lease`. *System path.*
    async fn claim_codes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<DoorCodeRecord>>;
    /// Stores a worker's result if the code's version is still
    /// `next.version`; returns whether it did. *System path.*
    async fn finish_code(&self, next: &DoorCodeRecord) -> Result<bool>;
    /// Counts one use of a code reported by its lock, and marks it for
    /// removal when it reaches `max_usages`. *System path.*
    async fn record_code_use(
        &self,
        device: DeviceId,
        code: DoorCodeId,
        now: DateTime<Utc>,
    ) -> Result<DoorCodeRecord>;

    /// Checks in confirmed bookings whose check-in has come and checks out
    /// in-progress ones whose check-out has come (codes of the latter are
    /// marked for removal). Conditional: each booking moves once however
    /// many workers run. *System path.*
    async fn advance_stays(&self, now: DateTime<Utc>, limit: u32) -> Result<StayMoves>;

    /// Claims up to `limit` pending notifications due at `now`, moving their
    /// next attempt to `now + lease`. *System path.*
    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Notification>>;
    /// Stores a delivery result. *System path.*
    async fn finish_notification(&self, next: &Notification) -> Result<()>;
    /// A booking's notifications.
    async fn notifications_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<Notification>>;
}
