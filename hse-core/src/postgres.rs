//! PostgreSQL adapter of the [`TenancyStore`](crate::TenancyStore) port (feature `postgres`).
//!
//! Schema: `hse-core/migrations`. Every HSE crate's migrations share one
//! `_sqlx_migrations` table with globally unique versions (hse-core uses
//! `20261128000xxx`), so each crate's [`migrate`] ignores the others'.
//!
//! # How scoping and integrity are enforced
//! - Reads filter in SQL by the caller's [`Scope`], with the same rule as
//!   [`Scope::contains`] applied to the columns each entity's [`Resource`]
//!   comes from; a row outside the scope answers `NotFound`, exactly like a
//!   missing one.
//! - Writes check, in their transaction, that the parent is in scope;
//!   composite foreign keys make a reference into another tenant
//!   impossible even for raw SQL, and a trigger keeps custom roles inside
//!   their organization.
//! - Updates read the row `FOR NO KEY UPDATE`, apply the model's pure
//!   patch and write every column back; area re-parenting is serialised
//!   per establishment so no two moves can close a loop.
//!
//! # Layout
//! - `scoped`: scope filters, scoped fetch/list/delete shared by entities.
//! - `violation`: SQLSTATE → [`CoreError`] mapping of integrity violations;
//!   `data_exception`: values PostgreSQL refuses (class `22`), [`refused_value`].
//! - `tenants`, `establishments`, `areas`, `devices`, `users`, `roles`,
//!   `invitations`: one module per entity; `principals`, `locate`: the
//!   system paths that resolve who and where.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), hse_core::CoreError> {
//! use hse_core::postgres::{PgTenancyStore, migrate};
//! use hse_core::store::PartnerCompanyStore;
//! use hse_core::{Page, Scope};
//!
//! let pool = sqlx::PgPool::connect_lazy("postgres://postgres@127.0.0.1/hse")
//!     .map_err(|e| hse_core::CoreError::Storage(e.to_string()))?;
//! migrate(&pool).await?;
//! let store = PgTenancyStore::new(pool);
//! let companies = store.list_partner_companies(&Scope::Platform, Page::first_max()).await?;
//! println!("{} partner companies", companies.items.len());
//! # Ok(()) }
//! ```

mod app_role;
mod areas;
mod data_exception;
mod devices;
mod establishments;
mod invitations;
mod locate;
mod principals;
mod roles;
mod scoped;
mod tenants;
mod tx;
mod users;
mod violation;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

pub use self::app_role::{
    APP_GROUP_ROLE, APP_LOGIN_ROLE, TABLES_WITHOUT_TENANT_DATA, app_pool, app_role_problems,
    app_role_url, ensure_app_login_role,
};
use self::areas::AreaRow;
pub use self::data_exception::refused_value;
use self::devices::DeviceRow;
use self::establishments::EstablishmentRow;
use self::scoped::{delete, get, list};
use self::tenants::{OrganizationRow, PartnerCompanyRow};
pub use self::tx::{DbScope, begin_in, scoped_tx, set_scope, system_tx};
use self::users::UserRow;
use crate::action::catalogue;
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
use crate::store::{
    AreaStore, AssignmentStore, Credentials, DeviceStore, EstablishmentStore, InvitationStore,
    Listing, OrganizationStore, Page, PartnerCompanyStore, PlacementStore, RoleStore, Target,
    UserStore,
};
use crate::value::Email;

/// Applies hse-core's migrations and upserts the permission catalogue.
/// Idempotent; safe to run at every start.
///
/// # Errors
/// [`CoreError::Storage`] if a migration or the catalogue upsert fails.
pub async fn migrate(pool: &PgPool) -> Result<(), CoreError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|e| CoreError::Storage(format!("hse-core migrations: {e}")))?;
    seed_catalogue(pool).await
}

async fn seed_catalogue(pool: &PgPool) -> Result<(), CoreError> {
    let mut tx = pool.begin().await?;
    for action in catalogue() {
        sqlx::query(
            "INSERT INTO actions (name, resource, verb, category, description, exclusive_to)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET resource = EXCLUDED.resource, verb = EXCLUDED.verb,
                 category = EXCLUDED.category, description = EXCLUDED.description,
                 exclusive_to = EXCLUDED.exclusive_to",
        )
        .bind(action.name)
        .bind(action.resource)
        .bind(action.verb)
        .bind(action.category)
        .bind(action.description)
        .bind(action.exclusive_to.map(|r| r.name()))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The PostgreSQL adapter of [`TenancyStore`](crate::TenancyStore). Cheap to clone (it holds
/// a pool). Run [`migrate`] on the pool first.
#[derive(Clone, Debug)]
pub struct PgTenancyStore {
    pool: PgPool,
}

impl PgTenancyStore {
    /// A store over `pool` (migrated with [`migrate`]).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for callers that share it with other stores.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl PlacementStore for PgTenancyStore {
    async fn locate(&self, target: Target) -> Result<Option<Resource>> {
        locate::locate(&self.pool, target).await
    }
}

#[async_trait]
impl PartnerCompanyStore for PgTenancyStore {
    async fn insert_partner_company(&self, scope: &Scope, company: &PartnerCompany) -> Result<()> {
        tenants::insert_partner_company(&self.pool, scope, company).await
    }

    async fn partner_company(&self, scope: &Scope, id: PartnerCompanyId) -> Result<PartnerCompany> {
        get::<PartnerCompanyRow>(&self.pool, scope, id.0).await
    }

    async fn list_partner_companies(
        &self,
        scope: &Scope,
        page: Page,
    ) -> Result<Listing<PartnerCompany>> {
        list::<PartnerCompanyRow>(&self.pool, scope, None, page).await
    }

    async fn update_partner_company(
        &self,
        scope: &Scope,
        id: PartnerCompanyId,
        patch: PartnerCompanyPatch,
        now: DateTime<Utc>,
    ) -> Result<PartnerCompany> {
        tenants::update_partner_company(&self.pool, scope, id, patch, now).await
    }

    async fn delete_partner_company(&self, scope: &Scope, id: PartnerCompanyId) -> Result<()> {
        delete::<PartnerCompanyRow>(&self.pool, scope, id.0).await
    }
}

#[async_trait]
impl OrganizationStore for PgTenancyStore {
    async fn insert_organization(&self, scope: &Scope, org: &Organization) -> Result<()> {
        tenants::insert_organization(&self.pool, scope, org).await
    }

    async fn organization(&self, scope: &Scope, id: OrganizationId) -> Result<Organization> {
        get::<OrganizationRow>(&self.pool, scope, id.0).await
    }

    async fn list_organizations(&self, scope: &Scope, page: Page) -> Result<Listing<Organization>> {
        list::<OrganizationRow>(&self.pool, scope, None, page).await
    }

    async fn update_organization(
        &self,
        scope: &Scope,
        id: OrganizationId,
        patch: OrganizationPatch,
        now: DateTime<Utc>,
    ) -> Result<Organization> {
        tenants::update_organization(&self.pool, scope, id, patch, now).await
    }

    async fn delete_organization(&self, scope: &Scope, id: OrganizationId) -> Result<()> {
        delete::<OrganizationRow>(&self.pool, scope, id.0).await
    }
}

#[async_trait]
impl EstablishmentStore for PgTenancyStore {
    async fn insert_establishment(
        &self,
        scope: &Scope,
        est: &Establishment,
        assign_to: Option<UserId>,
    ) -> Result<()> {
        establishments::insert(&self.pool, scope, est, assign_to).await
    }

    async fn establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<Establishment> {
        get::<EstablishmentRow>(&self.pool, scope, id.0).await
    }

    async fn list_establishments(
        &self,
        scope: &Scope,
        page: Page,
    ) -> Result<Listing<Establishment>> {
        list::<EstablishmentRow>(&self.pool, scope, None, page).await
    }

    async fn update_establishment(
        &self,
        scope: &Scope,
        id: EstablishmentId,
        patch: EstablishmentPatch,
        now: DateTime<Utc>,
    ) -> Result<Establishment> {
        establishments::update(&self.pool, scope, id, patch, now).await
    }

    async fn delete_establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<()> {
        delete::<EstablishmentRow>(&self.pool, scope, id.0).await
    }
}

#[async_trait]
impl AreaStore for PgTenancyStore {
    async fn insert_area(&self, scope: &Scope, area: &Area) -> Result<()> {
        areas::insert(&self.pool, scope, area).await
    }

    async fn area(&self, scope: &Scope, id: AreaId) -> Result<Area> {
        get::<AreaRow>(&self.pool, scope, id.0).await
    }

    async fn list_areas(
        &self,
        scope: &Scope,
        establishment: Option<EstablishmentId>,
        page: Page,
    ) -> Result<Listing<Area>> {
        let filter = establishment.map(|e| ("a.establishment_id", e.0));
        list::<AreaRow>(&self.pool, scope, filter, page).await
    }

    async fn update_area(
        &self,
        scope: &Scope,
        id: AreaId,
        patch: AreaPatch,
        now: DateTime<Utc>,
    ) -> Result<Area> {
        areas::update(&self.pool, scope, id, patch, now).await
    }

    async fn delete_area(&self, scope: &Scope, id: AreaId) -> Result<()> {
        delete::<AreaRow>(&self.pool, scope, id.0).await
    }
}

#[async_trait]
impl DeviceStore for PgTenancyStore {
    async fn insert_device(
        &self,
        scope: &Scope,
        device: &Device,
        secret: SecretHash,
    ) -> Result<()> {
        devices::insert(&self.pool, scope, device, secret).await
    }

    async fn device(&self, scope: &Scope, id: DeviceId) -> Result<Device> {
        get::<DeviceRow>(&self.pool, scope, id.0).await
    }

    async fn list_devices(
        &self,
        scope: &Scope,
        area: Option<AreaId>,
        page: Page,
    ) -> Result<Listing<Device>> {
        let filter = area.map(|a| ("d.area_id", a.0));
        list::<DeviceRow>(&self.pool, scope, filter, page).await
    }

    async fn update_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        patch: DevicePatch,
        now: DateTime<Utc>,
    ) -> Result<Device> {
        devices::update(&self.pool, scope, id, patch, now).await
    }

    async fn delete_device(&self, scope: &Scope, id: DeviceId) -> Result<()> {
        delete::<DeviceRow>(&self.pool, scope, id.0).await
    }

    async fn device_secret_hash(&self, id: DeviceId) -> Result<Option<SecretHash>> {
        devices::secret_hash(&self.pool, id).await
    }

    async fn set_device_status(
        &self,
        id: DeviceId,
        status: DeviceStatus,
        now: DateTime<Utc>,
    ) -> Result<()> {
        devices::set_status(&self.pool, id, status, now).await
    }
}

#[async_trait]
impl UserStore for PgTenancyStore {
    async fn insert_user(
        &self,
        scope: &Scope,
        user: &User,
        password_hash: Option<&str>,
    ) -> Result<()> {
        users::insert(&self.pool, scope, user, password_hash).await
    }

    async fn user(&self, scope: &Scope, id: UserId) -> Result<User> {
        get::<UserRow>(&self.pool, scope, id.0).await
    }

    async fn list_users(&self, scope: &Scope, page: Page) -> Result<Listing<User>> {
        list::<UserRow>(&self.pool, scope, None, page).await
    }

    async fn update_user(
        &self,
        scope: &Scope,
        id: UserId,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User> {
        users::update(&self.pool, scope, id, patch, now).await
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>> {
        users::credentials(&self.pool, email).await
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        users::set_password_hash(&self.pool, id, password_hash, now).await
    }

    async fn principal(&self, id: UserId) -> Result<Principal> {
        principals::principal(&self.pool, id).await
    }
}

#[async_trait]
impl AssignmentStore for PgTenancyStore {
    async fn assign_establishment(
        &self,
        scope: &Scope,
        assignment: &UserEstablishment,
    ) -> Result<()> {
        users::assign(&self.pool, scope, assignment).await
    }

    async fn assignments(&self, scope: &Scope, user: UserId) -> Result<Vec<UserEstablishment>> {
        users::assignments(&self.pool, scope, user).await
    }
}

#[async_trait]
impl RoleStore for PgTenancyStore {
    async fn insert_role(&self, scope: &Scope, role: &Role) -> Result<()> {
        roles::insert(&self.pool, scope, role).await
    }

    async fn role(&self, scope: &Scope, id: RoleId) -> Result<Role> {
        roles::role(&self.pool, scope, id).await
    }

    async fn list_roles(&self, scope: &Scope, page: Page) -> Result<Listing<Role>> {
        roles::list_roles(&self.pool, scope, page).await
    }

    async fn permission_grants(&self, scope: &Scope, id: RoleId) -> Result<Vec<PermissionGrant>> {
        roles::grants(&self.pool, scope, id).await
    }

    async fn delete_role(&self, scope: &Scope, id: RoleId) -> Result<()> {
        roles::remove(&self.pool, scope, id).await
    }
}

#[async_trait]
impl InvitationStore for PgTenancyStore {
    async fn insert_invitation(&self, scope: &Scope, invitation: &Invitation) -> Result<()> {
        invitations::insert(&self.pool, scope, invitation).await
    }

    async fn invitation_by_token(&self, token: SecretHash) -> Result<Option<Invitation>> {
        invitations::by_token(&self.pool, token).await
    }

    async fn accept_invitation(
        &self,
        token: SecretHash,
        user: &User,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User> {
        invitations::accept(&self.pool, token, user, password_hash, now).await
    }

    async fn decline_invitation(
        &self,
        token: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Invitation> {
        invitations::decline(&self.pool, token, now).await
    }
}
