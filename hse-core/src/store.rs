//! The storage port: what the tenancy rules need from a database.
//!
//! Every read and write of tenant data takes the caller's [`Scope`] and
//! behaves as if anything outside it did not exist (`NotFound`). The few
//! unscoped methods are *system paths* used before a principal exists
//! (sign-in, device hello, invitation tokens) and say so in their docs.
//!
//! Adapters: [`crate::memory::MemoryStore`] and, with the `postgres`
//! feature, `crate::postgres::PgStore`. Both pass the behavioural suite in
//! `tests/store_behaviour.rs`, so they cannot drift.
//!
//! Entities are built and validated by the service ([`crate::Tenancy`])
//! before they reach a store; stores enforce what needs the stored state:
//! referential integrity (inside one tenant), uniqueness, tree shape, and
//! atomicity of read-modify-write updates.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::id::{
    AreaId, DeviceId, EstablishmentId, OrganizationId, PartnerCompanyId, RoleId, UserId,
};
use crate::invitation::Invitation;
use crate::model::{
    Area, AreaPatch, Device, DevicePatch, DeviceStatus, Establishment, EstablishmentPatch,
    Organization, OrganizationPatch, PartnerCompany, PartnerCompanyPatch, User, UserEstablishment,
    UserPatch,
};
use crate::principal::{Principal, Resource, Scope};
use crate::role::{PermissionGrant, Role};
use crate::secret::SecretHash;
use crate::value::Email;

/// Which slice of a list to return: up to `limit` items with ids after
/// `after` (ids are UUIDv7, so this is creation order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    limit: u32,
    after: Option<Uuid>,
}

impl Page {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 500;

    /// A page of `limit` (default 50) items after the cursor `after`.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `limit` when it is 0 or above 500.
    pub fn new(limit: Option<u32>, after: Option<Uuid>) -> Result<Self> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(CoreError::invalid("limit", "must be between 1 and 500"));
        }
        Ok(Self { limit, after })
    }

    /// The first page of the largest size.
    #[must_use]
    pub fn first_max() -> Self {
        Self {
            limit: Self::MAX_LIMIT,
            after: None,
        }
    }

    /// How many items at most.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The cursor: only ids greater than this.
    #[must_use]
    pub fn after(&self) -> Option<Uuid> {
        self.after
    }
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing<T> {
    /// The items, in id order.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next_cursor: Option<Uuid>,
}

impl<T> Listing<T> {
    /// Builds a listing from up to `limit + 1` items fetched in id order:
    /// the extra item, if present, only proves there is a next page.
    pub fn from_overfetch(mut items: Vec<T>, page: Page, id: impl Fn(&T) -> Uuid) -> Self {
        let limit = page.limit() as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(id)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// Something whose place in the tenant tree can be looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A partner company.
    PartnerCompany(PartnerCompanyId),
    /// An organization.
    Organization(OrganizationId),
    /// An establishment.
    Establishment(EstablishmentId),
    /// An area.
    Area(AreaId),
    /// A device.
    Device(DeviceId),
    /// A user.
    User(UserId),
    /// A role (system roles live on the platform).
    Role(RoleId),
}

/// A user's sign-in record (system path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// The PHC password hash, if a password was ever set.
    pub password_hash: Option<String>,
}

/// The storage port of hse-core.
///
/// Every `insert_*` refuses an id that is already stored with
/// [`CoreError::AlreadyExists`] naming the entity (`"partner company"`,
/// `"organization"`, `"establishment"`, `"area"`, `"device"`, `"user"`,
/// `"role"`, `"invitation"`), and leaves the stored one untouched.
#[async_trait]
pub trait TenancyStore: Send + Sync + std::fmt::Debug {
    /// Where `target` lives, or `None` if it does not exist.
    /// *System path*: callers check the scope themselves.
    async fn locate(&self, target: Target) -> Result<Option<Resource>>;

    /// Stores a new partner company (root scope only).
    async fn insert_partner_company(&self, scope: &Scope, company: &PartnerCompany) -> Result<()>;
    /// One partner company in scope.
    async fn partner_company(&self, scope: &Scope, id: PartnerCompanyId) -> Result<PartnerCompany>;
    /// Partner companies in scope.
    async fn list_partner_companies(
        &self,
        scope: &Scope,
        page: Page,
    ) -> Result<Listing<PartnerCompany>>;
    /// Applies `patch` atomically.
    async fn update_partner_company(
        &self,
        scope: &Scope,
        id: PartnerCompanyId,
        patch: PartnerCompanyPatch,
        now: DateTime<Utc>,
    ) -> Result<PartnerCompany>;
    /// Deletes it with the invitations to it; [`CoreError::InUse`] while
    /// organizations or users refer to it.
    async fn delete_partner_company(&self, scope: &Scope, id: PartnerCompanyId) -> Result<()>;

    /// Stores a new organization; its partner company must be in scope
    /// (or absent, for root).
    async fn insert_organization(&self, scope: &Scope, org: &Organization) -> Result<()>;
    /// One organization in scope.
    async fn organization(&self, scope: &Scope, id: OrganizationId) -> Result<Organization>;
    /// Organizations in scope.
    async fn list_organizations(&self, scope: &Scope, page: Page) -> Result<Listing<Organization>>;
    /// Applies `patch` atomically.
    async fn update_organization(
        &self,
        scope: &Scope,
        id: OrganizationId,
        patch: OrganizationPatch,
        now: DateTime<Utc>,
    ) -> Result<Organization>;
    /// Deletes it with the invitations to it; [`CoreError::InUse`] while
    /// establishments, users or custom roles refer to it.
    async fn delete_organization(&self, scope: &Scope, id: OrganizationId) -> Result<()>;

    /// Stores a new establishment in an organization in scope, and assigns
    /// it to `assign_to` (its creator) in the same transaction.
    async fn insert_establishment(
        &self,
        scope: &Scope,
        est: &Establishment,
        assign_to: Option<UserId>,
    ) -> Result<()>;
    /// One establishment in scope.
    async fn establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<Establishment>;
    /// Establishments in scope.
    async fn list_establishments(
        &self,
        scope: &Scope,
        page: Page,
    ) -> Result<Listing<Establishment>>;
    /// Applies `patch` atomically.
    async fn update_establishment(
        &self,
        scope: &Scope,
        id: EstablishmentId,
        patch: EstablishmentPatch,
        now: DateTime<Utc>,
    ) -> Result<Establishment>;
    /// Deletes it; [`CoreError::InUse`] while areas refer to it.
    async fn delete_establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<()>;

    /// Stores a new area; its parent, if any, must be in the same establishment.
    async fn insert_area(&self, scope: &Scope, area: &Area) -> Result<()>;
    /// One area in scope.
    async fn area(&self, scope: &Scope, id: AreaId) -> Result<Area>;
    /// Areas in scope, optionally of one establishment.
    async fn list_areas(
        &self,
        scope: &Scope,
        establishment: Option<EstablishmentId>,
        page: Page,
    ) -> Result<Listing<Area>>;
    /// Applies `patch` atomically; a new parent must be in the same
    /// establishment and not inside the area ([`CoreError::Invalid`] on
    /// `parent_area_id`).
    async fn update_area(
        &self,
        scope: &Scope,
        id: AreaId,
        patch: AreaPatch,
        now: DateTime<Utc>,
    ) -> Result<Area>;
    /// Deletes it; [`CoreError::InUse`] while sub-areas or devices refer to it.
    async fn delete_area(&self, scope: &Scope, id: AreaId) -> Result<()>;

    /// Stores a new device with the hash of its secret; its area must be
    /// in `device.establishment_id`.
    async fn insert_device(&self, scope: &Scope, device: &Device, secret: SecretHash)
    -> Result<()>;
    /// One device in scope.
    async fn device(&self, scope: &Scope, id: DeviceId) -> Result<Device>;
    /// Devices in scope, optionally of one area.
    async fn list_devices(
        &self,
        scope: &Scope,
        area: Option<AreaId>,
        page: Page,
    ) -> Result<Listing<Device>>;
    /// Applies `patch` atomically; a new area must be in the same establishment.
    async fn update_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        patch: DevicePatch,
        now: DateTime<Utc>,
    ) -> Result<Device>;
    /// Deletes it.
    async fn delete_device(&self, scope: &Scope, id: DeviceId) -> Result<()>;
    /// The stored hash of a device's secret. *System path* (device hello).
    async fn device_secret_hash(&self, id: DeviceId) -> Result<Option<SecretHash>>;
    /// Records a device's connectivity. *System path* (ingest).
    async fn set_device_status(
        &self,
        id: DeviceId,
        status: DeviceStatus,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Stores a new user; [`CoreError::AlreadyExists`] if the id or email
    /// is taken. A user of an organization takes its organization's partner:
    /// a different `partner_company_id` is [`CoreError::Invalid`] naming
    /// `partner_company_id`, none is filled in.
    async fn insert_user(
        &self,
        scope: &Scope,
        user: &User,
        password_hash: Option<&str>,
    ) -> Result<()>;
    /// One user in scope.
    async fn user(&self, scope: &Scope, id: UserId) -> Result<User>;
    /// Users in scope.
    async fn list_users(&self, scope: &Scope, page: Page) -> Result<Listing<User>>;
    /// Applies `patch` atomically.
    async fn update_user(
        &self,
        scope: &Scope,
        id: UserId,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User>;
    /// A user and its password hash by email. *System path* (sign-in).
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>>;
    /// Replaces a user's password hash. *System path* (password change,
    /// rehash on login).
    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Builds the principal of an active user from its role and
    /// assignments; [`CoreError::NotFound`] if it is absent or inactive,
    /// or if its organization or partner company (its own, or its
    /// organization's) is suspended: a suspended tenant's users, and the
    /// API keys they created, have no principal.
    /// *System path* (every authenticated request).
    async fn principal(&self, id: UserId) -> Result<Principal>;

    /// Stores a custom role and its permission grants (granted by
    /// `role.created_by` at `role.created_at`). A hierarchy below 5 (or
    /// above 32767), or a system role's id, is [`CoreError::Invalid`]
    /// naming `hierarchy`.
    async fn insert_role(&self, scope: &Scope, role: &Role) -> Result<()>;
    /// One role: system roles are visible to everyone, custom roles in scope.
    async fn role(&self, scope: &Scope, id: RoleId) -> Result<Role>;
    /// System roles and the custom roles in scope.
    async fn list_roles(&self, scope: &Scope, page: Page) -> Result<Listing<Role>>;
    /// The grants behind a role's permissions.
    async fn permission_grants(&self, scope: &Scope, id: RoleId) -> Result<Vec<PermissionGrant>>;
    /// Deletes a custom role with the invitations that offer it;
    /// [`CoreError::InUse`] while users or assignments hold it;
    /// [`CoreError::Invalid`] for a system role.
    async fn delete_role(&self, scope: &Scope, id: RoleId) -> Result<()>;

    /// Assigns a user to an establishment of its own organization
    /// (replacing an earlier assignment's role).
    async fn assign_establishment(
        &self,
        scope: &Scope,
        assignment: &UserEstablishment,
    ) -> Result<()>;
    /// A user's (in scope) assignments to the establishments in scope.
    async fn assignments(&self, scope: &Scope, user: UserId) -> Result<Vec<UserEstablishment>>;

    /// Stores an invitation; its target must exist and be in scope, and its
    /// role must be a system role or a custom role of the target
    /// organization ([`CoreError::NotFound`] on `role` otherwise: a partner
    /// company cannot be offered a custom role). [`CoreError::AlreadyExists`]
    /// for a taken id or token.
    async fn insert_invitation(&self, scope: &Scope, invitation: &Invitation) -> Result<()>;
    /// An invitation by the hash of its token. *System path*.
    async fn invitation_by_token(&self, token: SecretHash) -> Result<Option<Invitation>>;
    /// Atomically: checks the invitation is open at `now`, stores `user`
    /// with `password_hash`, and marks the invitation accepted. Two
    /// concurrent acceptances: exactly one succeeds. A `user` without the
    /// invitation's email, role and placement (its organization, or its
    /// partner company and no organization) is [`CoreError::Invalid`]
    /// naming `user`, and the invitation stays open. *System path*.
    async fn accept_invitation(
        &self,
        token: SecretHash,
        user: &User,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User>;
    /// Atomically marks an open invitation declined. *System path*.
    async fn decline_invitation(&self, token: SecretHash, now: DateTime<Utc>)
    -> Result<Invitation>;
}
