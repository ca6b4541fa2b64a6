//! PostgreSQL adapter of [`BookingStore`] (feature `postgres`).
//!
//! Schema: `hse-booking/migrations` (versions `20261128200xxx`, sharing
//! `_sqlx_migrations` with the other crates, whose versions each crate's
//! [`migrate`] ignores). The guarantees of the port live in the schema: the
//! exclusion constraint `bookings_no_overlap` makes double bookings
//! impossible, `door_codes_unique_per_lock` duplicate codes; a per-lock
//! advisory lock serializes the active-code cap; read-modify-write runs on
//! `FOR UPDATE` rows; claims use `FOR UPDATE SKIP LOCKED`. SQLSTATEs are
//! mapped where the query is made (`violation`): `23P01` → overlap (with
//! the conflicting booking's id, queried) or code collision, `23505` →
//! already exists, `23503` → not found.
//!
//! One submodule per table group: `guests`, `bookings`, `codes`, `outbox`;
//! `scope` puts the caller's scope into SQL; `rows` decodes; `statements`
//! holds the SQL the isolation tests run as the store does.

mod bookings;
mod codes;
mod guests;
mod outbox;
mod rows;
mod scope;
#[doc(hidden)]
pub mod statements;
mod violation;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::{AreaId, DeviceId, Listing, Page, Scope};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use crate::codes::DoorCodeRecord;
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingId, Companion, DoorCodeId, Guest, GuestId, GuestPatch};
use crate::notification::Notification;
use crate::store::{BookingFilter, BookingStore, DeleteCheck, Edit, StayMoves};
use crate::window::Blocked;

/// Applies hse-booking's migrations (after hse-core's). Idempotent.
///
/// # Errors
/// [`BookingError::Storage`] if a migration fails.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|e| BookingError::Storage(format!("hse-booking migrations: {e}")))
}

/// The PostgreSQL [`BookingStore`].
#[derive(Clone, Debug)]
pub struct PgBookingStore {
    pool: PgPool,
}

impl PgBookingStore {
    /// A store over `pool` (run [`migrate`] first).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Decodes every row with `f`.
fn collect<T>(rows: &[PgRow], f: fn(&PgRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

#[async_trait]
impl BookingStore for PgBookingStore {
    async fn insert_guest(&self, scope: &Scope, guest: &Guest) -> Result<()> {
        guests::insert(&self.pool, scope, guest).await
    }

    async fn guest(&self, scope: &Scope, id: GuestId) -> Result<Guest> {
        guests::get(&self.pool, scope, id).await
    }

    async fn list_guests(&self, scope: &Scope, page: Page) -> Result<Listing<Guest>> {
        guests::list(&self.pool, scope, page).await
    }

    async fn update_guest(
        &self,
        scope: &Scope,
        id: GuestId,
        patch: GuestPatch,
        now: DateTime<Utc>,
    ) -> Result<Guest> {
        guests::update(&self.pool, scope, id, patch, now).await
    }

    async fn add_companion(&self, scope: &Scope, link: &Companion) -> Result<()> {
        guests::add_companion(&self.pool, scope, link).await
    }

    async fn companions(&self, scope: &Scope, guest: GuestId) -> Result<Vec<Companion>> {
        guests::companions(&self.pool, scope, guest).await
    }

    async fn insert_booking(
        &self,
        scope: &Scope,
        booking: &Booking,
        outbox: &[Notification],
    ) -> Result<()> {
        bookings::insert(&self.pool, scope, booking, outbox).await
    }

    async fn booking(&self, scope: &Scope, id: BookingId) -> Result<Booking> {
        bookings::get(&self.pool, scope, id).await
    }

    async fn list_bookings(
        &self,
        scope: &Scope,
        filter: BookingFilter,
        page: Page,
    ) -> Result<Listing<Booking>> {
        bookings::list(&self.pool, scope, filter, page).await
    }

    async fn blocked(
        &self,
        scope: &Scope,
        area: AreaId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Blocked>> {
        bookings::blocked(&self.pool, scope, area, from, until).await
    }

    async fn update_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        edit: Edit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        bookings::update(&self.pool, scope, id, edit, now).await
    }

    async fn delete_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        check: DeleteCheck<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        bookings::delete(&self.pool, scope, id, check, now).await
    }

    async fn insert_code(
        &self,
        code: &DoorCodeRecord,
        cap: u32,
        outbox: &[Notification],
    ) -> Result<()> {
        codes::insert(&self.pool, code, cap, outbox).await
    }

    async fn codes_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<DoorCodeRecord>> {
        codes::of_booking(&self.pool, scope, booking).await
    }

    async fn claim_codes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<DoorCodeRecord>> {
        codes::claim(&self.pool, now, lease, limit).await
    }

    async fn finish_code(&self, next: &DoorCodeRecord) -> Result<bool> {
        codes::finish(&self.pool, next).await
    }

    async fn record_code_use(
        &self,
        device: DeviceId,
        code: DoorCodeId,
        now: DateTime<Utc>,
    ) -> Result<DoorCodeRecord> {
        codes::record_use(&self.pool, device, code, now).await
    }

    async fn advance_stays(&self, now: DateTime<Utc>, limit: u32) -> Result<StayMoves> {
        bookings::advance_stays(&self.pool, now, limit).await
    }

    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        outbox::claim(&self.pool, now, lease, limit).await
    }

    async fn finish_notification(&self, next: &Notification) -> Result<()> {
        outbox::finish(&self.pool, next).await
    }

    async fn notifications_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<Notification>> {
        outbox::of_booking(&self.pool, scope, booking).await
    }
}
