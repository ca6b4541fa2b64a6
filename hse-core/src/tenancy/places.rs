//! The places of the tenant tree through the service: establishments
//! (and who is assigned to them), areas and devices.

use super::Tenancy;
use crate::error::{CoreError, Result};
use crate::id::{AreaId, DeviceId, EstablishmentId, RoleId, UserId};
use crate::model::{
    Area, AreaPatch, Device, DevicePatch, Establishment, EstablishmentPatch, NewArea, NewDevice,
    NewEstablishment, UserEstablishment,
};
use crate::principal::Principal;
use crate::rules::may_give_role;
use crate::secret::Secret;
use crate::store::{Listing, Page, Target};

impl Tenancy {
    // ----- establishments ----------------------------------------------

    /// Creates an establishment; a creator who belongs to the organization
    /// (an admin) is assigned to it at once, or it could not see it.
    ///
    /// # Errors
    /// [`CoreError::NotFound`], [`CoreError::Denied`], [`CoreError::Invalid`].
    pub async fn create_establishment(
        &self,
        who: &Principal,
        new: NewEstablishment,
    ) -> Result<Establishment> {
        let org = new.organization_id;
        self.check(
            who,
            "create_establishment",
            Target::Organization(org),
            "organization",
        )
        .await?;
        let est = new.build(self.now())?;
        let assign_to = (who.organization_id == Some(org)).then_some(who.user_id);
        self.wrote(
            self.store
                .insert_establishment(&who.scope(), &est, assign_to)
                .await,
        )?;
        Ok(est)
    }

    /// One establishment.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn establishment(
        &self,
        who: &Principal,
        id: EstablishmentId,
    ) -> Result<Establishment> {
        self.check(
            who,
            "read_establishment",
            Target::Establishment(id),
            "establishment",
        )
        .await?;
        self.store.establishment(&who.scope(), id).await
    }

    /// Establishments the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_establishment`.
    pub async fn establishments(
        &self,
        who: &Principal,
        page: Page,
    ) -> Result<Listing<Establishment>> {
        Self::check_list(who, "read_establishment")?;
        self.store.list_establishments(&who.scope(), page).await
    }

    /// Updates an establishment.
    ///
    /// # Errors
    /// As [`Tenancy::establishment`], plus [`CoreError::Invalid`].
    pub async fn update_establishment(
        &self,
        who: &Principal,
        id: EstablishmentId,
        patch: EstablishmentPatch,
    ) -> Result<Establishment> {
        self.check(
            who,
            "update_establishment",
            Target::Establishment(id),
            "establishment",
        )
        .await?;
        self.wrote(
            self.store
                .update_establishment(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    /// Deletes an establishment without areas.
    ///
    /// # Errors
    /// As [`Tenancy::establishment`], plus [`CoreError::InUse`].
    pub async fn delete_establishment(&self, who: &Principal, id: EstablishmentId) -> Result<()> {
        self.check(
            who,
            "delete_establishment",
            Target::Establishment(id),
            "establishment",
        )
        .await?;
        self.wrote(self.store.delete_establishment(&who.scope(), id).await)
    }

    /// Assigns a user of the organization to an establishment, optionally
    /// with an establishment role (at or below the assigner's rank). The
    /// assignee must be someone the assigner may manage (rank at or below,
    /// establishments within the assigner's).
    ///
    /// # Errors
    /// [`CoreError::NotFound`], [`CoreError::Denied`].
    pub async fn assign_establishment(
        &self,
        who: &Principal,
        user: UserId,
        establishment: EstablishmentId,
        role: Option<RoleId>,
    ) -> Result<UserEstablishment> {
        let target = Target::Establishment(establishment);
        self.check(who, "assign_establishment_user", target, "establishment")
            .await?;
        if who.user_id != user {
            let assignee = self.store.user(&who.scope(), user).await?;
            self.check_manages(who, &assignee).await?;
        }
        if let Some(role_id) = role {
            let role = self.store.role(&who.scope(), role_id).await?;
            may_give_role(who, &role)?;
        }
        let assignment = UserEstablishment {
            user_id: user,
            establishment_id: establishment,
            role_id: role,
            assigned_at: self.now(),
            assigned_by: Some(who.user_id),
        };
        self.wrote(
            self.store
                .assign_establishment(&who.scope(), &assignment)
                .await,
        )?;
        Ok(assignment)
    }

    // ----- areas -------------------------------------------------------

    /// Creates an area (optionally inside another of the same establishment).
    ///
    /// # Errors
    /// [`CoreError::NotFound`], [`CoreError::Denied`], [`CoreError::Invalid`].
    pub async fn create_area(&self, who: &Principal, new: NewArea) -> Result<Area> {
        let target = Target::Establishment(new.establishment_id);
        self.check(who, "create_area", target, "establishment")
            .await?;
        let area = new.build(self.now())?;
        self.wrote(self.store.insert_area(&who.scope(), &area).await)?;
        Ok(area)
    }

    /// One area.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn area(&self, who: &Principal, id: AreaId) -> Result<Area> {
        self.check(who, "read_area", Target::Area(id), "area")
            .await?;
        self.store.area(&who.scope(), id).await
    }

    /// Areas the principal can see, optionally of one establishment.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_area`.
    pub async fn areas(
        &self,
        who: &Principal,
        establishment: Option<EstablishmentId>,
        page: Page,
    ) -> Result<Listing<Area>> {
        Self::check_list(who, "read_area")?;
        self.store
            .list_areas(&who.scope(), establishment, page)
            .await
    }

    /// Updates an area (moving it never creates a cycle).
    ///
    /// # Errors
    /// As [`Tenancy::area`], plus [`CoreError::Invalid`].
    pub async fn update_area(&self, who: &Principal, id: AreaId, patch: AreaPatch) -> Result<Area> {
        self.check(who, "update_area", Target::Area(id), "area")
            .await?;
        self.wrote(
            self.store
                .update_area(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    /// Deletes an area without sub-areas or devices.
    ///
    /// # Errors
    /// As [`Tenancy::area`], plus [`CoreError::InUse`].
    pub async fn delete_area(&self, who: &Principal, id: AreaId) -> Result<()> {
        self.check(who, "delete_area", Target::Area(id), "area")
            .await?;
        self.wrote(self.store.delete_area(&who.scope(), id).await)
    }

    // ----- devices -----------------------------------------------------

    /// Registers a device and returns it with its secret, shown only now.
    ///
    /// # Errors
    /// [`CoreError::NotFound`], [`CoreError::Denied`], [`CoreError::Invalid`].
    pub async fn create_device(&self, who: &Principal, new: NewDevice) -> Result<(Device, Secret)> {
        let resource = self
            .check(who, "create_device", Target::Area(new.area_id), "area")
            .await?;
        let establishment = resource
            .establishment_id
            .ok_or(CoreError::not_found("area"))?;
        let device = new.build(establishment, self.now())?;
        let secret = Secret::generate()?;
        self.wrote(
            self.store
                .insert_device(&who.scope(), &device, secret.hash())
                .await,
        )?;
        Ok((device, secret))
    }

    /// One device.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn device(&self, who: &Principal, id: DeviceId) -> Result<Device> {
        self.check(who, "read_device", Target::Device(id), "device")
            .await?;
        self.store.device(&who.scope(), id).await
    }

    /// Devices the principal can see, optionally of one area.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_device`.
    pub async fn devices(
        &self,
        who: &Principal,
        area: Option<AreaId>,
        page: Page,
    ) -> Result<Listing<Device>> {
        Self::check_list(who, "read_device")?;
        self.store.list_devices(&who.scope(), area, page).await
    }

    /// Updates a device.
    ///
    /// # Errors
    /// As [`Tenancy::device`], plus [`CoreError::Invalid`].
    pub async fn update_device(
        &self,
        who: &Principal,
        id: DeviceId,
        patch: DevicePatch,
    ) -> Result<Device> {
        self.check(who, "update_device", Target::Device(id), "device")
            .await?;
        self.wrote(
            self.store
                .update_device(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    /// Removes a device.
    ///
    /// # Errors
    /// As [`Tenancy::device`].
    pub async fn delete_device(&self, who: &Principal, id: DeviceId) -> Result<()> {
        self.check(who, "delete_device", Target::Device(id), "device")
            .await?;
        self.wrote(self.store.delete_device(&who.scope(), id).await)
    }
}
