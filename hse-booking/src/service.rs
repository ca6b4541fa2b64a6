//! [`Bookings`]: the service that ties the rules, the stores, authorization
//! and the outbox together. Every public method takes the acting
//! [`Principal`] and checks the permission catalogue; targets outside the
//! principal's scope answer `NotFound`.
//!
//! Bookings live here; the submodules `guests`, `codes` and `modify` add
//! the methods for guests, door codes and modifications.
//!
//! A refused or failed call is logged at DEBUG on its span: most are the
//! caller's mistake or an expected conflict (overlap, illegal transition,
//! not found, invalid), and a genuine failure (storage) is logged once, at
//! ERROR, by the caller that handles it (hse-server's 503).

mod codes;
mod guests;
mod modify;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hse_core::{
    ActionName, AreaId, Establishment, Listing, Page, Principal, Resource, Scope, Target,
    TenancyStore, authorize, rules::Denied,
};
use tracing::{Level, instrument};

use crate::confirmation::ConfirmationCode;
use crate::door_code::{CodeSource, OsCodes};
use crate::error::{BookingError, Result};
use crate::model::{
    Booking, BookingId, BookingStatus, Cancellation, NewBooking, Stay, check_requests,
    check_total_guests,
};
use crate::notification::{ChannelKind, Notification, NotificationKind, outbox};
use crate::policy::BookingPolicy;
use crate::status::{self, BookingAction};
use crate::store::{BookingFilter, BookingStore, Change};
use crate::window::{BookingWindow, free_intervals};

/// How many enclosing areas are searched for locks.
const MAX_AREA_DEPTH: usize = 16;

/// Device types treated as door locks.
pub const LOCK_TYPES: [&str; 4] = ["doorlock", "door_lock", "lock", "smart_lock"];

/// How the service behaves.
#[derive(Clone, Debug)]
pub struct BookingsConfig {
    /// Channels every notification goes out on (email needs the guest's
    /// address). Default: email.
    pub channels: Vec<ChannelKind>,
    /// How many times to redraw a colliding door code. Default 20.
    pub code_attempts: u32,
    /// Remove a code after this many uses reported by its lock. Default:
    /// no limit.
    pub code_max_usages: Option<u32>,
}

impl Default for BookingsConfig {
    fn default() -> Self {
        Self {
            channels: vec![ChannelKind::Email],
            code_attempts: 20,
            code_max_usages: None,
        }
    }
}

/// The booking service: guests, race-free bookings, door codes and the
/// notification outbox.
///
/// It runs over a [`BookingStore`] ([`crate::MemoryBookingStore`] to try it,
/// `hse_booking::postgres::PgBookingStore` in production) and the same
/// [`TenancyStore`] as the partner's `hse_core::Tenancy`, which it asks
/// where rooms and locks live. Every call takes the caller's
/// [`Principal`] (see `hse_core::Tenancy` for the first one, the root);
/// inputs are [`crate::NewGuest`], [`crate::NewBooking`] and
/// [`crate::Stay`].
///
/// ```
/// use std::sync::Arc;
///
/// use hse_booking::{Bookings, BookingsConfig, MemoryBookingStore};
/// use hse_core::TenancyStore;
///
/// let tenancy: Arc<dyn TenancyStore> = Arc::new(hse_core::MemoryTenancyStore::new());
/// let bookings = Bookings::new(Arc::new(MemoryBookingStore::new()), tenancy, BookingsConfig::default());
/// # let _ = bookings;
/// ```
///
/// `examples/embed_sdk.rs` books a room with it: a guest, a booking, a
/// refused overlap, a door code programmed on the lock.
#[derive(Clone, Debug)]
pub struct Bookings {
    store: Arc<dyn BookingStore>,
    tenancy: Arc<dyn TenancyStore>,
    codes: Arc<dyn CodeSource>,
    config: BookingsConfig,
}

fn action(name: &str) -> Result<ActionName> {
    Ok(ActionName::parse(name)?)
}

/// Authorizes `name` at `resource`; out of scope reads as `NotFound`.
fn check(p: &Principal, name: &str, resource: &Resource, entity: &'static str) -> Result<()> {
    authorize(p, &action(name)?, resource).map_err(|d| match d {
        Denied::OutOfScope => BookingError::not_found(entity),
        other => BookingError::Denied(other),
    })
}

impl Bookings {
    /// A service over `store`, resolving tenancy through `tenancy`, with
    /// OS-random door codes.
    #[must_use]
    pub fn new(
        store: Arc<dyn BookingStore>,
        tenancy: Arc<dyn TenancyStore>,
        config: BookingsConfig,
    ) -> Self {
        Self {
            store,
            tenancy,
            codes: Arc::new(OsCodes),
            config,
        }
    }

    /// Replaces the door-code source (tests force collisions with it).
    #[must_use]
    pub fn with_code_source(mut self, codes: Arc<dyn CodeSource>) -> Self {
        self.codes = codes;
        self
    }

    /// The underlying store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn BookingStore> {
        &self.store
    }

    async fn locate(&self, target: Target, entity: &'static str) -> Result<Resource> {
        self.tenancy
            .locate(target)
            .await?
            .ok_or_else(|| BookingError::not_found(entity))
    }

    async fn establishment(
        &self,
        scope: &Scope,
        area: &Resource,
    ) -> Result<(Establishment, BookingPolicy)> {
        let id = area
            .establishment_id
            .ok_or_else(|| BookingError::not_found("establishment"))?;
        let est = self.tenancy.establishment(scope, id).await?;
        let policy = BookingPolicy::from_metadata(&est.metadata)?;
        Ok((est, policy))
    }

    fn window(est: &Establishment, policy: &BookingPolicy, stay: Stay) -> Result<BookingWindow> {
        stay.window(est.timezone.tz(), &policy.stay_times)
    }

    /// Books an area. A conflicting active booking of the area (after the
    /// turnover gap) is refused with its id.
    ///
    /// # Errors
    /// `Overlap { with }`, `NotFound` (area or guest), `Denied`, `Invalid`.
    #[instrument(skip_all, fields(area.id = %new.area_id), err(level = Level::DEBUG))]
    pub async fn create_booking(
        &self,
        p: &Principal,
        new: NewBooking,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let area = self.locate(Target::Area(new.area_id), "area").await?;
        check(p, "create_booking", &area, "area")?;
        let scope = p.scope();
        let (est, policy) = self.establishment(&scope, &area).await?;
        let guest = self.store.guest(&scope, new.guest_id).await?;
        if guest.tenancy.organization_id != est.organization_id {
            return Err(BookingError::not_found("guest"));
        }
        let window = Self::window(&est, &policy, new.stay)?;
        let mut booking = Booking {
            id: BookingId::new(),
            tenancy: guest.tenancy,
            establishment_id: est.id,
            area_id: new.area_id,
            guest_id: guest.id,
            window,
            blocked_until: policy.turnover.blocked_until(&window),
            status: BookingStatus::Pending,
            confirmation_code: ConfirmationCode::generate()?,
            special_requests: check_requests(&new.special_requests)?,
            total_guests: check_total_guests(new.total_guests)?,
            metadata: new.metadata,
            created_by: p.user_id,
            created_at: now,
            updated_at: now,
            cancellation: None,
        };
        self.insert_new(&scope, &mut booking).await?;
        Ok(booking)
    }

    /// Inserts a new booking, redrawing its confirmation code on the rare
    /// collision.
    async fn insert_new(&self, scope: &Scope, booking: &mut Booking) -> Result<()> {
        for _ in 0..5 {
            match self.store.insert_booking(scope, booking, &[]).await {
                Err(BookingError::AlreadyExists {
                    entity: "confirmation_code",
                }) => {
                    booking.confirmation_code = ConfirmationCode::generate()?;
                }
                other => return other,
            }
        }
        Err(BookingError::AlreadyExists {
            entity: "confirmation_code",
        })
    }

    async fn booking_for(&self, p: &Principal, id: BookingId, name: &str) -> Result<Booking> {
        let booking = self.store.booking(&p.scope(), id).await?;
        check(p, name, &booking.resource(), "booking")?;
        Ok(booking)
    }

    /// One booking.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn booking(&self, p: &Principal, id: BookingId) -> Result<Booking> {
        self.booking_for(p, id, "read_booking").await
    }

    /// Bookings in scope.
    ///
    /// # Errors
    /// `Denied` without `read_booking`.
    pub async fn list_bookings(
        &self,
        p: &Principal,
        filter: BookingFilter,
        page: Page,
    ) -> Result<Listing<Booking>> {
        let read = action("read_booking")?;
        if !p.permissions.contains(&read) {
            return Err(BookingError::Denied(Denied::MissingPermission {
                action: read,
            }));
        }
        self.store.list_bookings(&p.scope(), filter, page).await
    }

    async fn notify(
        &self,
        kind: NotificationKind,
        booking: &Booking,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<Vec<Notification>> {
        let guest = self.store.guest(scope, booking.guest_id).await?;
        Ok(outbox(
            kind,
            booking,
            &guest,
            &self.config.channels,
            None,
            now,
        ))
    }

    /// Confirms a pending booking (notifying the guest) and issues door codes
    /// on the area's locks, sending check-in instructions with each.
    ///
    /// # Errors
    /// `IllegalTransition { from }`, `NotFound`, `Denied`; `CodeCapReached`
    /// if a lock is full (the booking stays confirmed; call
    /// [`Self::issue_codes`] again later).
    #[instrument(skip_all, fields(booking.id = %id), err(level = Level::DEBUG))]
    pub async fn confirm(
        &self,
        p: &Principal,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let current = self.booking_for(p, id, "update_booking").await?;
        let scope = p.scope();
        let probe = Booking {
            status: BookingStatus::Confirmed,
            ..current
        };
        let out = self
            .notify(NotificationKind::BookingConfirmed, &probe, &scope, now)
            .await?;
        let edit = move |b: &Booking| -> Result<Change> {
            let status = status::next(b.status, BookingAction::Confirm)?;
            let booking = Booking {
                status,
                updated_at: now,
                ..b.clone()
            };
            Ok(Change {
                booking,
                outbox: out.clone(),
            })
        };
        let booking = self.store.update_booking(&scope, id, &edit, now).await?;
        self.issue_codes(p, id, now).await?;
        Ok(booking)
    }

    /// Cancels a pending or confirmed booking, recording who, when and why;
    /// its codes are removed from the locks.
    ///
    /// # Errors
    /// `IllegalTransition { from }`, `NotFound`, `Denied`, `Invalid`.
    #[instrument(skip_all, fields(booking.id = %id), err(level = Level::DEBUG))]
    pub async fn cancel(
        &self,
        p: &Principal,
        id: BookingId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let current = self.booking_for(p, id, "update_booking").await?;
        let reason = hse_core::value::optional_text("reason", reason, 1000)?;
        let out = self
            .notify(
                NotificationKind::BookingCancelled,
                &current,
                &p.scope(),
                now,
            )
            .await?;
        let by = p.user_id;
        let edit = move |b: &Booking| -> Result<Change> {
            let status = status::next(b.status, BookingAction::Cancel)?;
            let cancellation = Some(Cancellation {
                at: now,
                by,
                reason: reason.clone(),
            });
            let booking = Booking {
                status,
                cancellation,
                updated_at: now,
                ..b.clone()
            };
            Ok(Change {
                booking,
                outbox: out.clone(),
            })
        };
        self.store.update_booking(&p.scope(), id, &edit, now).await
    }

    /// Deletes a pending or confirmed booking for good; its codes are
    /// removed from the locks.
    ///
    /// # Errors
    /// `IllegalTransition { from }`, `NotFound`, `Denied`.
    #[instrument(skip_all, fields(booking.id = %id), err(level = Level::DEBUG))]
    pub async fn delete(&self, p: &Principal, id: BookingId, now: DateTime<Utc>) -> Result<()> {
        self.booking_for(p, id, "delete_booking").await?;
        let check = |b: &Booking| -> Result<()> {
            status::next(b.status, BookingAction::Delete)?;
            Ok(())
        };
        self.store.delete_booking(&p.scope(), id, &check, now).await
    }

    /// The free intervals of an area within `within`, honouring the gap.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn availability(
        &self,
        p: &Principal,
        area_id: AreaId,
        within: BookingWindow,
    ) -> Result<Vec<BookingWindow>> {
        let area = self.locate(Target::Area(area_id), "area").await?;
        check(p, "read_booking", &area, "area")?;
        let scope = p.scope();
        let (_, policy) = self.establishment(&scope, &area).await?;
        let gap = policy.turnover.gap();
        let taken = self
            .store
            .blocked(
                &Scope::Platform,
                area_id,
                within.check_in() - gap,
                within.check_out() + gap,
            )
            .await?;
        Ok(free_intervals(&within, &taken, gap))
    }

    /// A booking's notifications.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn notifications(&self, p: &Principal, id: BookingId) -> Result<Vec<Notification>> {
        self.booking_for(p, id, "read_booking").await?;
        self.store.notifications_of_booking(&p.scope(), id).await
    }
}
