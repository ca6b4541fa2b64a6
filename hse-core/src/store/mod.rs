//! The storage port: what the tenancy rules need from a database.
//!
//! Every read and write of tenant data takes the caller's [`Scope`](crate::Scope) and
//! behaves as if anything outside it did not exist (`NotFound`). The few
//! unscoped methods are *system paths* used before a principal exists
//! (sign-in, device hello, invitation tokens) and say so in their docs.
//!
//! Adapters: [`crate::memory::MemoryTenancyStore`] and, with the `postgres`
//! feature, `crate::postgres::PgTenancyStore`. Both pass the behavioural suite in
//! `tests/store_behaviour.rs`, so they cannot drift.
//!
//! Entities are built and validated by the service ([`crate::Tenancy`])
//! before they reach a store; stores enforce what needs the stored state:
//! referential integrity (inside one tenant), uniqueness, tree shape, and
//! atomicity of read-modify-write updates.

mod areas;
mod devices;
mod establishments;
mod invitations;
mod roles;
mod tenants;
mod users;

pub use self::areas::AreaStore;
pub use self::devices::DeviceStore;
pub use self::establishments::EstablishmentStore;
pub use self::invitations::InvitationStore;
pub use self::roles::RoleStore;
pub use self::tenants::{OrganizationStore, PartnerCompanyStore};
pub use self::users::{AssignmentStore, UserStore};

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::id::{
    AreaId, DeviceId, EstablishmentId, OrganizationId, PartnerCompanyId, RoleId, UserId,
};
use crate::model::User;
use crate::principal::Resource;

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

/// Where things live in the tenant tree. Part of [`TenancyStore`].
#[async_trait]
pub trait PlacementStore: Send + Sync {
    /// Where `target` lives, or `None` if it does not exist.
    /// *System path*: callers check the scope themselves.
    async fn locate(&self, target: Target) -> Result<Option<Resource>>;
}

/// The storage port of hse-core: every per-entity port at once, for the
/// callers that need them all ([`crate::Tenancy`], the server's backends).
/// A caller that needs less takes the port it needs, e.g.
/// `Arc<dyn UserStore>` (an `Arc<dyn TenancyStore>` upcasts to it).
///
/// Every `insert_*` refuses an id that is already stored with
/// [`CoreError::AlreadyExists`] naming the entity (`"partner company"`,
/// `"organization"`, `"establishment"`, `"area"`, `"device"`, `"user"`,
/// `"role"`, `"invitation"`), and leaves the stored one untouched.
///
/// It is implemented for every type that implements all the ports; an
/// adapter implements the ports, never this trait.
pub trait TenancyStore:
    PlacementStore
    + PartnerCompanyStore
    + OrganizationStore
    + EstablishmentStore
    + AreaStore
    + DeviceStore
    + UserStore
    + AssignmentStore
    + RoleStore
    + InvitationStore
    + std::fmt::Debug
{
}

impl<T> TenancyStore for T where
    T: PlacementStore
        + PartnerCompanyStore
        + OrganizationStore
        + EstablishmentStore
        + AreaStore
        + DeviceStore
        + UserStore
        + AssignmentStore
        + RoleStore
        + InvitationStore
        + std::fmt::Debug
        + ?Sized
{
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{TenancyStore, UserStore};
    use crate::memory::MemoryTenancyStore;
    use crate::value::Email;

    #[tokio::test]
    async fn the_whole_store_upcasts_to_the_one_port_a_caller_needs() {
        let whole: Arc<dyn TenancyStore> = Arc::new(MemoryTenancyStore::new());
        let users: Arc<dyn UserStore> = whole;
        let email = Email::parse("nobody@example.com").unwrap();
        assert!(users.credentials(&email).await.unwrap().is_none());
    }
}
