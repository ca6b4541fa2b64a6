//! Door codes through the service: issuing them on the locks of a
//! booking's area and the areas enclosing it, reading them, and counting
//! the uses locks report.

use chrono::{DateTime, Utc};
use hse_core::{AreaId, Device, DeviceId, Page, Principal, Resource, Scope};
use tracing::{Level, instrument};

use super::{Bookings, LOCK_TYPES, MAX_AREA_DEPTH};
use crate::codes::{self, DoorCodeRecord};
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingId, DoorCodeId, Guest};
use crate::notification::{NotificationKind, outbox};
use crate::policy::{BookingPolicy, LockSettings};

impl Bookings {
    /// Issues a code on every lock of the booking's area (and of the areas
    /// enclosing it) that has no live code for it yet, each with check-in
    /// instructions in the outbox. A colliding code is redrawn.
    ///
    /// # Errors
    /// `CodeCapReached`, `NotFound`, `Denied`.
    #[instrument(skip_all, fields(booking.id = %id), err(level = Level::DEBUG))]
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

    /// Issues one code on `device`, redrawing on collision.
    async fn issue_one(
        &self,
        booking: &Booking,
        guest: &Guest,
        device: DeviceId,
        settings: LockSettings,
        policy: BookingPolicy,
        now: DateTime<Utc>,
    ) -> Result<DoorCodeId> {
        let clash = || BookingError::AlreadyExists {
            entity: "door_code",
        };
        for _ in 0..self.config.code_attempts {
            let code = self.codes.next_code(settings.code_length)?;
            let kind = NotificationKind::CheckInInstructions;
            let out = outbox(
                kind,
                booking,
                guest,
                &self.config.channels,
                Some(&code),
                now,
            );
            let max_usages = self.config.code_max_usages;
            let cap = settings.max_active_codes;
            let record = codes::issue(booking, device, code, policy.grace, cap, max_usages, now);
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
        Err(clash())
    }

    /// A booking's door codes.
    ///
    /// # Errors
    /// `NotFound`, `Denied`.
    pub async fn codes(&self, p: &Principal, id: BookingId) -> Result<Vec<DoorCodeRecord>> {
        self.booking_for(p, id, "read_booking").await?;
        self.store.codes_of_booking(&p.scope(), id).await
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
