//! [`Bookings`]: the service that ties the rules, the stores, authorization
//! and the outbox together. Every public method takes the acting
//! [`Principal`] and checks the permission catalogue; targets outside the
//! principal's scope answer `NotFound`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hse_core::{
    ActionName, AreaId, Device, DeviceId, Establishment, Listing, Page, Principal, Resource, Scope,
    Target, TenancyStore, authorize, rules::Denied,
};
use tracing::instrument;

use crate::codes::{self, CodeState, DoorCodeRecord};
use crate::confirmation::ConfirmationCode;
use crate::door_code::{CodeSource, OsCodes};
use crate::error::{BookingError, Result};
use crate::model::{
    Booking, BookingId, BookingPatch, BookingStatus, Cancellation, Companion, DoorCodeId, Guest,
    GuestId, GuestPatch, NewBooking, NewGuest, Owner, Stay, check_requests, check_total_guests,
};
use crate::notification::{ChannelKind, Notification, NotificationKind, outbox};
use crate::policy::{BookingPolicy, LockSettings};
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

/// The booking service.
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

    /// Registers a guest in the principal's organization (or the given one).
    ///
    /// # Errors
    /// `NotFound` for an organization out of scope, `Denied`, `Invalid`.
    #[instrument(skip_all, err)]
    pub async fn create_guest(
        &self,
        p: &Principal,
        new: NewGuest,
        now: DateTime<Utc>,
    ) -> Result<Guest> {
        let org = new
            .organization_id
            .or(p.organization_id)
            .ok_or_else(|| BookingError::invalid("organization_id", "is required"))?;
        let resource = self
            .locate(Target::Organization(org), "organization")
            .await?;
        check(p, "create_guest", &resource, "organization")?;
        let tenancy = Owner {
            partner_company_id: resource.partner_company_id,
            organization_id: org,
        };
        let guest = new.build(tenancy, now)?;
        self.store.insert_guest(&p.scope(), &guest).await?;
        Ok(guest)
    }

    async fn guest_for(&self, p: &Principal, id: GuestId, name: &str) -> Result<Guest> {
        let guest = self.store.guest(&p.scope(), id).await?;
        let resource = Resource::organization(
            guest.tenancy.partner_company_id,
            guest.tenancy.organization_id,
        );
        check(p, name, &resource, "guest")?;
        Ok(guest)
    }

    /// One guest.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn guest(&self, p: &Principal, id: GuestId) -> Result<Guest> {
        self.guest_for(p, id, "read_guest").await
    }

    /// Guests in the principal's scope.
    ///
    /// # Errors
    /// `Denied` without `read_guest`.
    pub async fn list_guests(&self, p: &Principal, page: Page) -> Result<Listing<Guest>> {
        let read = action("read_guest")?;
        if !p.permissions.contains(&read) {
            return Err(BookingError::Denied(Denied::MissingPermission {
                action: read,
            }));
        }
        self.store.list_guests(&p.scope(), page).await
    }

    /// Edits a guest.
    ///
    /// # Errors
    /// `NotFound`, `Denied`, `Invalid`.
    pub async fn update_guest(
        &self,
        p: &Principal,
        id: GuestId,
        patch: GuestPatch,
        now: DateTime<Utc>,
    ) -> Result<Guest> {
        self.guest_for(p, id, "update_guest").await?;
        self.store.update_guest(&p.scope(), id, patch, now).await
    }

    /// Links two guests as companions; the link shows from both sides.
    ///
    /// # Errors
    /// `NotFound`, `Denied`, `Invalid` (same guest, other organization),
    /// `AlreadyExists`.
    pub async fn add_companion(
        &self,
        p: &Principal,
        guest: GuestId,
        companion: GuestId,
        relationship: &str,
        now: DateTime<Utc>,
    ) -> Result<Companion> {
        self.guest_for(p, guest, "update_guest").await?;
        self.guest_for(p, companion, "update_guest").await?;
        let link = Companion {
            guest_id: guest,
            companion_id: companion,
            relationship: hse_core::value::text("relationship", relationship, 50)?,
            added_at: now,
        };
        self.store.add_companion(&p.scope(), &link).await?;
        Ok(link)
    }

    /// A guest's companions, each seen from `guest`.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn companions(&self, p: &Principal, guest: GuestId) -> Result<Vec<Companion>> {
        self.guest_for(p, guest, "read_guest").await?;
        self.store.companions(&p.scope(), guest).await
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
        match stay {
            Stay::Instants {
                check_in,
                check_out,
            } => BookingWindow::new(check_in, check_out),
            Stay::Dates { arrival, departure } => {
                policy
                    .stay_times
                    .resolve(est.timezone.tz(), arrival, departure)
            }
        }
    }

    /// Books an area. A conflicting active booking of the area (after the
    /// turnover gap) is refused with its id.
    ///
    /// # Errors
    /// `Overlap { with }`, `NotFound` (area or guest), `Denied`, `Invalid`.
    #[instrument(skip_all, fields(area.id = %new.area_id), err)]
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
        for _ in 0..5 {
            match self.store.insert_booking(&scope, &booking, &[]).await {
                Err(BookingError::AlreadyExists {
                    entity: "confirmation_code",
                }) => {
                    booking.confirmation_code = ConfirmationCode::generate()?;
                }
                other => return other.map(|()| booking),
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
    #[instrument(skip_all, fields(booking.id = %id), err)]
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
    #[instrument(skip_all, fields(booking.id = %id), err)]
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

    /// Changes dates, area (same establishment) or guests of a pending or
    /// confirmed booking, under the same overlap rule; codes follow (a new
    /// window reprograms them, a new area moves them to its locks).
    ///
    /// # Errors
    /// `IllegalTransition { from }`, `Overlap { with }`, `NotFound`,
    /// `Denied`, `Invalid`.
    #[instrument(skip_all, fields(booking.id = %id), err)]
    pub async fn modify(
        &self,
        p: &Principal,
        id: BookingId,
        patch: BookingPatch,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        let current = self.booking_for(p, id, "update_booking").await?;
        status::next(current.status, BookingAction::Modify)?;
        let scope = p.scope();
        let area_id = patch.area_id.unwrap_or(current.area_id);
        let area = self.locate(Target::Area(area_id), "area").await?;
        if area.establishment_id != Some(current.establishment_id) {
            return Err(BookingError::invalid(
                "area_id",
                "must be in the booking's establishment",
            ));
        }
        check(p, "update_booking", &area, "area")?;
        let (est, policy) = self.establishment(&scope, &area).await?;
        let window = patch
            .stay
            .map(|s| Self::window(&est, &policy, s))
            .transpose()?;
        if let Some(g) = patch.guest_id {
            let guest = self.store.guest(&scope, g).await?;
            if guest.tenancy.organization_id != current.tenancy.organization_id {
                return Err(BookingError::not_found("guest"));
            }
        }
        let total = patch.total_guests.map(check_total_guests).transpose()?;
        let requests = patch
            .special_requests
            .as_deref()
            .map(check_requests)
            .transpose()?;
        let guest_id = patch.guest_id.unwrap_or(current.guest_id);
        let mut probe = current.clone();
        probe.guest_id = guest_id;
        probe.window = window.unwrap_or(current.window);
        let out = self
            .notify(NotificationKind::BookingModified, &probe, &scope, now)
            .await?;
        let metadata = patch.metadata;
        let edit = move |b: &Booking| -> Result<Change> {
            status::next(b.status, BookingAction::Modify)?;
            let mut next = b.clone();
            next.area_id = area_id;
            next.guest_id = guest_id;
            next.window = window.unwrap_or(b.window);
            next.blocked_until = policy.turnover.blocked_until(&next.window);
            next.total_guests = total.unwrap_or(b.total_guests);
            next.special_requests = requests
                .clone()
                .unwrap_or_else(|| b.special_requests.clone());
            next.metadata = metadata.clone().unwrap_or_else(|| b.metadata.clone());
            next.updated_at = now;
            Ok(Change {
                booking: next,
                outbox: out.clone(),
            })
        };
        let booking = self.store.update_booking(&scope, id, &edit, now).await?;
        if booking.area_id != current.area_id && codes::wants_codes(booking.status) {
            self.issue_codes(p, id, now).await?;
        }
        Ok(booking)
    }

    /// Deletes a pending or confirmed booking for good; its codes are
    /// removed from the locks.
    ///
    /// # Errors
    /// `IllegalTransition { from }`, `NotFound`, `Denied`.
    #[instrument(skip_all, fields(booking.id = %id), err)]
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

    /// Issues a code on every lock of the booking's area (and of the areas
    /// enclosing it) that has no live
    /// code for it yet, each with check-in instructions in the outbox.
    /// A colliding code is redrawn.
    ///
    /// # Errors
    /// `CodeCapReached`, `NotFound`, `Denied`.
    #[instrument(skip_all, fields(booking.id = %id), err)]
    pub async fn issue_codes(
        &self,
        p: &Principal,
        id: BookingId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DoorCodeId>> {
        let booking = self.booking_for(p, id, "update_booking").await?;
        let scope = p.scope();
        let existing = self.store.codes_of_booking(&scope, id).await?;
        let area = Resource::organization(
            booking.tenancy.partner_company_id,
            booking.tenancy.organization_id,
        )
        .in_establishment(booking.establishment_id);
        let (_, policy) = self.establishment(&scope, &area).await?;
        let guest = self.store.guest(&scope, booking.guest_id).await?;
        let locks = self.locks_of(&scope, booking.area_id).await?;
        let mut issued = Vec::new();
        for lock in &locks {
            let has = existing
                .iter()
                .any(|c| c.device_id == lock.id && c.state.is_wanted());
            if has || !codes::wants_codes(booking.status) {
                continue;
            }
            let settings = LockSettings::from_metadata(&lock.metadata)?;
            issued.push(
                self.issue_one(&booking, &guest, lock.id, settings, policy, now)
                    .await?,
            );
        }
        Ok(issued)
    }

    /// The locks of an area and of the areas enclosing it (a building's
    /// entrance serves every room in it).
    async fn locks_of(&self, scope: &Scope, area: AreaId) -> Result<Vec<Device>> {
        let mut locks = Vec::new();
        let mut next = Some(area);
        for _ in 0..MAX_AREA_DEPTH {
            let Some(id) = next else { break };
            let devices = self
                .tenancy
                .list_devices(scope, Some(id), Page::first_max())
                .await?;
            locks.extend(
                devices
                    .items
                    .into_iter()
                    .filter(|d| LOCK_TYPES.contains(&d.device_type.as_str())),
            );
            next = self.tenancy.area(scope, id).await?.parent_area_id;
        }
        Ok(locks)
    }

    async fn issue_one(
        &self,
        booking: &Booking,
        guest: &Guest,
        device: DeviceId,
        settings: LockSettings,
        policy: BookingPolicy,
        now: DateTime<Utc>,
    ) -> Result<DoorCodeId> {
        let (valid_from, valid_until) = codes::validity(booking, policy.grace);
        for _ in 0..self.config.code_attempts {
            let code = self.codes.next_code(settings.code_length)?;
            let out = outbox(
                NotificationKind::CheckInInstructions,
                booking,
                guest,
                &self.config.channels,
                Some(&code),
                now,
            );
            let record = DoorCodeRecord {
                id: DoorCodeId::new(),
                booking_id: Some(booking.id),
                tenancy: booking.tenancy,
                establishment_id: booking.establishment_id,
                area_id: booking.area_id,
                device_id: device,
                code,
                valid_from,
                valid_until,
                grace: policy.grace,
                state: CodeState::Pending,
                failure_reason: None,
                attempts: 0,
                next_attempt_at: Some(now),
                usage_count: 0,
                max_usages: self.config.code_max_usages,
                version: 0,
                created_at: now,
                updated_at: now,
            };
            match self
                .store
                .insert_code(&record, settings.max_active_codes, &out)
                .await
            {
                Err(BookingError::AlreadyExists {
                    entity: "door_code",
                }) => {}
                other => return other.map(|()| record.id),
            }
        }
        Err(BookingError::AlreadyExists {
            entity: "door_code",
        })
    }

    /// A booking's door codes.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn codes(&self, p: &Principal, id: BookingId) -> Result<Vec<DoorCodeRecord>> {
        self.booking_for(p, id, "read_booking").await?;
        self.store.codes_of_booking(&p.scope(), id).await
    }

    /// A booking's notifications.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn notifications(&self, p: &Principal, id: BookingId) -> Result<Vec<Notification>> {
        self.booking_for(p, id, "read_booking").await?;
        self.store.notifications_of_booking(&p.scope(), id).await
    }

    /// A lock reported that `code` opened it (`code_used`). *System path*
    /// (device events are authenticated by the device secret).
    ///
    /// # Errors
    /// `NotFound` if the code is not that lock's.
    pub async fn record_code_use(
        &self,
        device: DeviceId,
        code: DoorCodeId,
        now: DateTime<Utc>,
    ) -> Result<DoorCodeRecord> {
        self.store.record_code_use(device, code, now).await
    }
}
