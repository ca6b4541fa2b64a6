//! The tenancy service: the one entry point that applies the rules.
//!
//! Every method takes the acting [`Principal`], checks it with
//! [`authorize`] and the creation rules of [`crate::rules`], and only then
//! calls the [`TenancyStore`] with the principal's [`Scope`]. A target in
//! another tenant is reported as `NotFound`, exactly like a missing one.
//! Servers and embedding services call this; they never need to call the
//! store directly for tenant data.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::action::{Action, ActionName, catalogue};
use crate::cache::{Revision, RevisionCache};
use crate::clock::{Clock, SystemClock};
use crate::error::{CoreError, Result};
use crate::id::{
    AreaId, DeviceId, EstablishmentId, InvitationId, OrganizationId, PartnerCompanyId, RoleId,
    UserId,
};
use crate::invitation::{
    Acceptance, DEFAULT_INVITATION_TTL, Invitation, InvitationStatus, InvitationTarget,
    NewInvitation, PasswordHasher,
};
use crate::model::{
    Area, AreaPatch, Device, DevicePatch, Establishment, EstablishmentPatch, NewArea, NewDevice,
    NewEstablishment, NewOrganization, NewPartnerCompany, NewUser, Organization, OrganizationPatch,
    PartnerCompany, PartnerCompanyPatch, User, UserEstablishment, UserPatch,
};
use crate::principal::{Principal, Resource, Scope};
use crate::role::{NewRole, PermissionGrant, Role};
use crate::rules::{Denied, authorize, may_create_role, may_create_user, may_give_role};
use crate::secret::Secret;
use crate::store::{Listing, Page, Target, TenancyStore};

/// The tenancy service. Cheap to clone; clones share the write
/// [`Revision`] and the placement cache.
///
/// It runs over a [`TenancyStore`]: [`crate::MemoryStore`] to try it or in
/// tests, `hse_core::postgres::PgStore` (feature `postgres`) in
/// production. Every call takes the caller's [`Principal`], which
/// [`Tenancy::principal`] loads for a user. The first one, the platform's
/// root, is a user inserted once at [`Scope::Platform`] (`hse-server
/// bootstrap-root` does the same), then loaded like any other:
///
/// ```
/// use std::sync::Arc;
///
/// use hse_core::value::Email;
/// use hse_core::{MemoryStore, NewOrganization, NewUser, Scope, SystemRole, Tenancy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> hse_core::Result<()> {
/// let tenancy = Tenancy::new(Arc::new(MemoryStore::new()));
/// let root = NewUser {
///     email: Email::parse("root@partner.example")?,
///     first_name: "Root".into(),
///     last_name: String::new(),
///     role_id: SystemRole::Root.id(),
///     partner_company_id: None,
///     organization_id: None,
/// }
/// .build(None, true, chrono::Utc::now())?;
/// tenancy.store().insert_user(&Scope::Platform, &root, None).await?;
/// let root = tenancy.principal(root.id).await?;
///
/// let org = NewOrganization { name: "Hoteles del Sol".into(), ..Default::default() };
/// let org = tenancy.create_organization(&root, org).await?;
/// assert_eq!(org.name, "Hoteles del Sol");
/// # Ok(())
/// # }
/// ```
///
/// `examples/embed_sdk.rs` goes on from there: an admin, a hotel, a room
/// and its door lock, then bookings over the same store.
#[derive(Clone, Debug)]
pub struct Tenancy {
    store: Arc<dyn TenancyStore>,
    clock: Arc<dyn Clock>,
    revision: Revision,
    placements: Arc<RevisionCache<Target, Resource>>,
}

/// How many placements one process keeps.
const PLACEMENTS: usize = 65_536;

/// Turns a refusal into the error a caller sees: out of scope is "not found".
fn refused(entity: &'static str) -> impl FnOnce(Denied) -> CoreError {
    move |denied| match denied {
        Denied::OutOfScope => CoreError::not_found(entity),
        other => CoreError::Denied(other),
    }
}

impl Tenancy {
    /// A service over `store`, on the system clock.
    #[must_use]
    pub fn new(store: Arc<dyn TenancyStore>) -> Self {
        Self::with_clock(store, Arc::new(SystemClock))
    }

    /// A service over `store` on `clock` (tests).
    #[must_use]
    pub fn with_clock(store: Arc<dyn TenancyStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            revision: Revision::new(),
            placements: Arc::new(RevisionCache::new(PLACEMENTS, Duration::zero())),
        }
    }

    /// Keeps where things live in the tenant tree for up to `ttl` (zero,
    /// the default, reads it for every check). Writes through this service
    /// (and its clones) retire the cache at once; `ttl` bounds how late a
    /// change made elsewhere (another process, the store directly) is seen.
    #[must_use]
    pub fn with_placement_cache(mut self, ttl: Duration) -> Self {
        self.placements = Arc::new(RevisionCache::new(PLACEMENTS, ttl));
        self
    }

    /// The count of writes made through this service, for caches of
    /// answers those writes may change (e.g. principals in hse-auth).
    #[must_use]
    pub fn revision(&self) -> Revision {
        self.revision.clone()
    }

    /// The underlying store, for system paths (sign-in, device hello).
    #[must_use]
    pub fn store(&self) -> &Arc<dyn TenancyStore> {
        &self.store
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Counts a write (whatever its outcome: a failed one changed nothing,
    /// and counting it only retires cached answers early) and passes its
    /// result on.
    fn wrote<T>(&self, result: Result<T>) -> Result<T> {
        self.revision.bump();
        result
    }

    /// Where `target` lives in the tenant tree, or `None` if it does not
    /// exist. *System path*: answers are cached as
    /// [`Tenancy::with_placement_cache`] says.
    ///
    /// # Errors
    /// [`CoreError::Storage`] when the store fails.
    pub async fn locate(&self, target: Target) -> Result<Option<Resource>> {
        let now = self.now();
        let revision = self.revision.current();
        if let Some(resource) = self.placements.get(&target, now, revision) {
            return Ok(Some(resource));
        }
        let found = self.store.locate(target).await?;
        if let Some(resource) = &found {
            self.placements.insert(target, *resource, now, revision);
        }
        Ok(found)
    }

    /// Authorizes `name` on `target`, returning where it lives.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] naming `entity` when the target is absent or
    /// outside the principal's scope; [`CoreError::Denied`] without the
    /// permission there.
    pub async fn authorize(
        &self,
        who: &Principal,
        action: &ActionName,
        target: Target,
        entity: &'static str,
    ) -> Result<Resource> {
        let resource = self
            .locate(target)
            .await?
            .ok_or(CoreError::not_found(entity))?;
        authorize(who, action, &resource).map_err(refused(entity))?;
        Ok(resource)
    }

    /// [`Tenancy::authorize`] for an action named in this file.
    async fn check(
        &self,
        who: &Principal,
        name: &str,
        target: Target,
        entity: &'static str,
    ) -> Result<Resource> {
        self.authorize(who, &ActionName::known(name), target, entity)
            .await
    }

    /// Lists need the read permission somewhere (role-wide or in an
    /// assigned establishment); the store then filters by scope.
    fn check_list(who: &Principal, name: &str) -> Result<()> {
        let act = ActionName::known(name);
        let anywhere = who.permissions.contains(&act)
            || who
                .establishments
                .values()
                .any(|extra| extra.contains(&act));
        if anywhere {
            Ok(())
        } else {
            Err(Denied::MissingPermission { action: act }.into())
        }
    }

    /// The principal of an active user. *System path.*
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an absent or inactive user.
    pub async fn principal(&self, user: UserId) -> Result<Principal> {
        self.store.principal(user).await
    }

    /// The permission catalogue.
    #[must_use]
    pub fn actions(&self) -> &'static [Action] {
        catalogue()
    }

    // ----- partner companies -------------------------------------------

    /// Creates a partner company (root only: `create_partner_company` is
    /// root-exclusive).
    ///
    /// # Errors
    /// [`CoreError::Denied`] or [`CoreError::Invalid`].
    pub async fn create_partner_company(
        &self,
        who: &Principal,
        new: NewPartnerCompany,
    ) -> Result<PartnerCompany> {
        authorize(
            who,
            &ActionName::known("create_partner_company"),
            &Resource::platform(),
        )
        .map_err(refused("partner company"))?;
        let company = new.build(self.now())?;
        self.wrote(
            self.store
                .insert_partner_company(&who.scope(), &company)
                .await,
        )?;
        Ok(company)
    }

    /// One partner company.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn partner_company(
        &self,
        who: &Principal,
        id: PartnerCompanyId,
    ) -> Result<PartnerCompany> {
        self.check(
            who,
            "read_partner_company",
            Target::PartnerCompany(id),
            "partner company",
        )
        .await?;
        self.store.partner_company(&who.scope(), id).await
    }

    /// Partner companies the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_partner_company`.
    pub async fn partner_companies(
        &self,
        who: &Principal,
        page: Page,
    ) -> Result<Listing<PartnerCompany>> {
        Self::check_list(who, "read_partner_company")?;
        self.store.list_partner_companies(&who.scope(), page).await
    }

    /// Updates a partner company.
    ///
    /// # Errors
    /// As [`Tenancy::partner_company`], plus [`CoreError::Invalid`].
    pub async fn update_partner_company(
        &self,
        who: &Principal,
        id: PartnerCompanyId,
        patch: PartnerCompanyPatch,
    ) -> Result<PartnerCompany> {
        self.check(
            who,
            "update_partner_company",
            Target::PartnerCompany(id),
            "partner company",
        )
        .await?;
        self.wrote(
            self.store
                .update_partner_company(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    /// Deletes a partner company that nothing refers to any more.
    ///
    /// # Errors
    /// As [`Tenancy::partner_company`], plus [`CoreError::InUse`].
    pub async fn delete_partner_company(
        &self,
        who: &Principal,
        id: PartnerCompanyId,
    ) -> Result<()> {
        self.check(
            who,
            "delete_partner_company",
            Target::PartnerCompany(id),
            "partner company",
        )
        .await?;
        self.wrote(self.store.delete_partner_company(&who.scope(), id).await)
    }

    // ----- organizations -----------------------------------------------

    /// Creates an organization, under a partner company or (root only)
    /// directly under the platform.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for a partner company out of scope,
    /// [`CoreError::Denied`], [`CoreError::Invalid`].
    pub async fn create_organization(
        &self,
        who: &Principal,
        new: NewOrganization,
    ) -> Result<Organization> {
        match new.partner_company_id {
            Some(p) => {
                let parent = Target::PartnerCompany(p);
                self.check(who, "create_organization", parent, "partner company")
                    .await?;
            }
            None => authorize(
                who,
                &ActionName::known("create_organization"),
                &Resource::platform(),
            )
            .map_err(refused("partner company"))?,
        }
        let org = new.build(self.now())?;
        self.wrote(self.store.insert_organization(&who.scope(), &org).await)?;
        Ok(org)
    }

    /// One organization.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn organization(&self, who: &Principal, id: OrganizationId) -> Result<Organization> {
        self.check(
            who,
            "read_organization",
            Target::Organization(id),
            "organization",
        )
        .await?;
        self.store.organization(&who.scope(), id).await
    }

    /// Organizations the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_organization`.
    pub async fn organizations(
        &self,
        who: &Principal,
        page: Page,
    ) -> Result<Listing<Organization>> {
        Self::check_list(who, "read_organization")?;
        self.store.list_organizations(&who.scope(), page).await
    }

    /// Updates an organization.
    ///
    /// # Errors
    /// As [`Tenancy::organization`], plus [`CoreError::Invalid`].
    pub async fn update_organization(
        &self,
        who: &Principal,
        id: OrganizationId,
        patch: OrganizationPatch,
    ) -> Result<Organization> {
        self.check(
            who,
            "update_organization",
            Target::Organization(id),
            "organization",
        )
        .await?;
        self.wrote(
            self.store
                .update_organization(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    /// Deletes an organization that nothing refers to any more.
    ///
    /// # Errors
    /// As [`Tenancy::organization`], plus [`CoreError::InUse`].
    pub async fn delete_organization(&self, who: &Principal, id: OrganizationId) -> Result<()> {
        self.check(
            who,
            "delete_organization",
            Target::Organization(id),
            "organization",
        )
        .await?;
        self.wrote(self.store.delete_organization(&who.scope(), id).await)
    }

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
    /// with an establishment role (at or below the assigner's rank).
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

    // ----- users -------------------------------------------------------

    /// Where a new user with this tenancy would be placed.
    async fn placement(
        &self,
        partner: Option<PartnerCompanyId>,
        org: Option<OrganizationId>,
    ) -> Result<Resource> {
        match (partner, org) {
            (_, Some(o)) => self
                .locate(Target::Organization(o))
                .await?
                .ok_or(CoreError::not_found("organization")),
            (Some(p), None) => self
                .locate(Target::PartnerCompany(p))
                .await?
                .ok_or(CoreError::not_found("partner company")),
            (None, None) => Ok(Resource::platform()),
        }
    }

    /// Creates a user (only root, partner and admin, with roles
    /// at or below their own, inside their scope). `password_hash` comes
    /// from a [`PasswordHasher`]; without one the user must be invited.
    ///
    /// # Errors
    /// [`CoreError::Denied`] naming the rule, [`CoreError::NotFound`],
    /// [`CoreError::AlreadyExists`] for a taken email.
    pub async fn create_user(
        &self,
        who: &Principal,
        new: NewUser,
        password_hash: Option<&str>,
    ) -> Result<User> {
        let placement = self
            .placement(new.partner_company_id, new.organization_id)
            .await?;
        let role = self.store.role(&who.scope(), new.role_id).await?;
        may_create_user(who, &role, &placement).map_err(refused("organization"))?;
        let user = new.build(placement.partner_company_id, false, self.now())?;
        self.wrote(
            self.store
                .insert_user(&who.scope(), &user, password_hash)
                .await,
        )?;
        Ok(user)
    }

    /// One user.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn user(&self, who: &Principal, id: UserId) -> Result<User> {
        self.check(who, "read_user", Target::User(id), "user")
            .await?;
        self.store.user(&who.scope(), id).await
    }

    /// Users the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_user`.
    pub async fn users(&self, who: &Principal, page: Page) -> Result<Listing<User>> {
        Self::check_list(who, "read_user")?;
        self.store.list_users(&who.scope(), page).await
    }

    /// Updates a user's names or activity; deactivating needs
    /// `delete_user` and a target at or below the principal's rank.
    ///
    /// # Errors
    /// As [`Tenancy::user`], plus [`CoreError::Invalid`].
    pub async fn update_user(&self, who: &Principal, id: UserId, patch: UserPatch) -> Result<User> {
        if who.user_id == id && patch.is_active == Some(false) {
            return Err(CoreError::invalid(
                "is_active",
                "you cannot deactivate yourself",
            ));
        }
        let needed = if patch.is_active.is_some() {
            "delete_user"
        } else {
            "update_user"
        };
        self.check(who, needed, Target::User(id), "user").await?;
        let target = self.store.user(&who.scope(), id).await?;
        let role = self.store.role(&Scope::Platform, target.role_id).await?;
        if who.user_id != id {
            may_give_role(who, &role)?;
        }
        self.wrote(
            self.store
                .update_user(&who.scope(), id, patch, self.now())
                .await,
        )
    }

    // ----- roles -------------------------------------------------------

    /// Creates a custom role.
    ///
    /// # Errors
    /// [`CoreError::Denied`] naming the rule broken, [`CoreError::NotFound`],
    /// [`CoreError::Invalid`].
    pub async fn create_role(&self, who: &Principal, new: NewRole) -> Result<Role> {
        let target = match new.establishment_id {
            Some(e) => Target::Establishment(e),
            None => Target::Organization(new.organization_id),
        };
        let placement = self
            .locate(target)
            .await?
            .ok_or(CoreError::not_found("organization"))?;
        if placement.organization_id != Some(new.organization_id) {
            return Err(CoreError::not_found("establishment"));
        }
        may_create_role(who, &new, &placement).map_err(refused("organization"))?;
        let role = Role {
            id: RoleId::new(),
            name: crate::value::text("name", &new.name, 100)?,
            description: crate::value::optional_text("description", &new.description, 500)?,
            hierarchy: new.hierarchy,
            organization_id: Some(new.organization_id),
            establishment_id: new.establishment_id,
            created_by: Some(who.user_id),
            permissions: new.permissions,
            created_at: self.now(),
        };
        self.wrote(self.store.insert_role(&who.scope(), &role).await)?;
        Ok(role)
    }

    /// One role (system roles are visible to everyone).
    ///
    /// # Errors
    /// [`CoreError::NotFound`] (also outside the scope) or [`CoreError::Denied`].
    pub async fn role(&self, who: &Principal, id: RoleId) -> Result<Role> {
        Self::check_list(who, "read_role")?;
        self.store.role(&who.scope(), id).await
    }

    /// System roles and the custom roles the principal can see.
    ///
    /// # Errors
    /// [`CoreError::Denied`] without `read_role`.
    pub async fn roles(&self, who: &Principal, page: Page) -> Result<Listing<Role>> {
        Self::check_list(who, "read_role")?;
        self.store.list_roles(&who.scope(), page).await
    }

    /// Who granted each permission of a role, and when.
    ///
    /// # Errors
    /// As [`Tenancy::role`].
    pub async fn permission_grants(
        &self,
        who: &Principal,
        id: RoleId,
    ) -> Result<Vec<PermissionGrant>> {
        Self::check_list(who, "read_role")?;
        self.store.permission_grants(&who.scope(), id).await
    }

    /// Deletes a custom role nobody holds.
    ///
    /// # Errors
    /// As [`Tenancy::role`], plus [`CoreError::InUse`], and
    /// [`CoreError::Invalid`] for a system role.
    pub async fn delete_role(&self, who: &Principal, id: RoleId) -> Result<()> {
        self.check(who, "delete_role", Target::Role(id), "role")
            .await?;
        self.wrote(self.store.delete_role(&who.scope(), id).await)
    }

    // ----- onboarding --------------------------------------------------

    /// Invites someone to an existing partner company or organization.
    /// Returns the invitation and its token, which is shown
    /// only now (to be mailed); only its hash is stored.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for a target that does not exist (or is out
    /// of scope), [`CoreError::Denied`] as for creating that user,
    /// [`CoreError::AlreadyExists`] when the email already has an account.
    pub async fn invite(
        &self,
        who: &Principal,
        new: NewInvitation,
    ) -> Result<(Invitation, Secret)> {
        let (target, entity) = match new.target {
            InvitationTarget::PartnerCompany(p) => (Target::PartnerCompany(p), "partner company"),
            InvitationTarget::Organization(o) => (Target::Organization(o), "organization"),
        };
        let placement = self.check(who, "create_invitation", target, entity).await?;
        let role = self.store.role(&who.scope(), new.role_id).await?;
        may_create_user(who, &role, &placement).map_err(refused(entity))?;
        if self.store.credentials(&new.email).await?.is_some() {
            return Err(CoreError::AlreadyExists {
                entity: "user",
                detail: format!("email {}", new.email),
            });
        }
        let token = Secret::generate()?;
        let now = self.now();
        let invitation = Invitation {
            id: InvitationId::new(),
            email: new.email,
            role_id: new.role_id,
            target: new.target,
            invited_by: who.user_id,
            token_hash: Some(token.hash()),
            status: InvitationStatus::Pending,
            expires_at: now + DEFAULT_INVITATION_TTL,
            created_at: now,
            responded_at: None,
        };
        self.wrote(
            self.store
                .insert_invitation(&who.scope(), &invitation)
                .await,
        )?;
        Ok((invitation, token))
    }

    /// Accepts an invitation: creates the user with the invited role and
    /// the chosen password, and closes the invitation, in one step.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown token,
    /// [`CoreError::InvitationClosed`], [`CoreError::Password`] when the
    /// password is refused, [`CoreError::AlreadyExists`].
    pub async fn accept_invitation(
        &self,
        token: &Secret,
        answer: Acceptance,
        hasher: &dyn PasswordHasher,
    ) -> Result<User> {
        let invitation = self
            .store
            .invitation_by_token(token.hash())
            .await?
            .ok_or(CoreError::not_found("invitation"))?;
        invitation.check_open(self.now())?;
        let (partner, org) = match invitation.target {
            InvitationTarget::PartnerCompany(p) => (Some(p), None),
            InvitationTarget::Organization(o) => (None, Some(o)),
        };
        let placement = self.placement(partner, org).await?;
        let user = NewUser {
            email: invitation.email.clone(),
            first_name: answer.first_name,
            last_name: answer.last_name,
            role_id: invitation.role_id,
            partner_company_id: partner,
            organization_id: org,
        }
        .build(placement.partner_company_id, true, self.now())?;
        let hash = hasher.hash_password(&answer.password).await?;
        self.wrote(
            self.store
                .accept_invitation(token.hash(), &user, &hash, self.now())
                .await,
        )
    }

    /// Declines an open invitation.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an unknown token, [`CoreError::InvitationClosed`].
    pub async fn decline_invitation(&self, token: &Secret) -> Result<Invitation> {
        self.wrote(
            self.store
                .decline_invitation(token.hash(), self.now())
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_action_the_service_names_is_in_the_catalogue() {
        let source = include_str!("tenancy.rs");
        let mut checked = 0;
        for piece in source.split('"').skip(1).step_by(2) {
            let looks_like_action = piece.contains('_')
                && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && ["create_", "read_", "update_", "delete_", "assign_"]
                    .iter()
                    .any(|p| piece.starts_with(p));
            if looks_like_action {
                assert!(crate::action::find(piece).is_some(), "{piece}");
                checked += 1;
            }
        }
        assert!(checked > 20);
    }
}
