//! Guests and their companions through the service.

use chrono::{DateTime, Utc};
use hse_core::rules::Denied;
use hse_core::{Listing, Page, Principal, Resource, Target};
use tracing::{Level, instrument};

use super::{Bookings, action, check};
use crate::error::{BookingError, Result};
use crate::model::{Companion, Guest, GuestId, GuestPatch, NewGuest, Owner};

impl Bookings {
    /// Registers a guest in the principal's organization (or the given one).
    ///
    /// # Errors
    /// `NotFound` for an organization out of scope, `Denied`, `Invalid`.
    #[instrument(skip_all, err(level = Level::DEBUG))]
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
}
