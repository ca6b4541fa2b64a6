//! hse-core: the tenancy model of HSE and the rules of who may see and do
//! what.
//!
//! The tenant tree is root → partner company → organization → establishment
//! → area → device, with users attached at each level. A user's role
//! (root, partner, admin, user, or a custom role) and establishment
//! assignments become a [`Principal`]; its [`Scope`] bounds every store
//! call, and [`authorize`] checks each action against the permission
//! catalogue.
//!
//! # Layout
//! - [`id`], [`value`], [`model`]: typed ids, validated values, entities.
//! - [`action`], [`role`]: the permission catalogue and the role hierarchy.
//! - [`principal`], [`rules`]: scopes and the pure authorization rules.
//! - [`invitation`], [`secret`]: onboarding and hashed secrets.
//! - [`store`]: the storage ports, one per entity, that [`TenancyStore`]
//!   groups; their adapters [`memory`] and `postgres`, one file per entity.
//! - [`tenancy`]: the service that ties rules and store together.
//! - [`cache`]: short-lived answers (principals, placements) retired by the
//!   service's write [`cache::Revision`].
//!
//! # Example
//! ```
//! use hse_core::{authorize, ActionName, Principal, Resource, SystemRole, OrganizationId, UserId};
//!
//! let org = OrganizationId::new();
//! let admin = Principal {
//!     user_id: UserId::new(),
//!     role_id: SystemRole::Admin.id(),
//!     hierarchy: SystemRole::Admin.hierarchy(),
//!     partner_company_id: None,
//!     organization_id: Some(org),
//!     permissions: SystemRole::Admin.default_permissions(),
//!     establishments: Default::default(),
//! };
//! let create_area = ActionName::parse("create_area").unwrap();
//! assert!(authorize(&admin, &create_area, &Resource::organization(None, org)).is_ok());
//! let elsewhere = Resource::organization(None, OrganizationId::new());
//! assert!(authorize(&admin, &create_area, &elsewhere).is_err());
//! ```

pub mod action;
pub mod cache;
pub mod clock;
pub mod error;
pub mod id;
pub mod invitation;
pub mod memory;
pub mod model;
pub mod principal;
pub mod role;
pub mod rules;
pub mod secret;
pub mod store;
pub mod tenancy;
pub mod value;

#[cfg(feature = "postgres")]
pub mod postgres;

pub use action::{Action, ActionName};
pub use error::{CoreError, Result};
pub use id::{
    AreaId, DeviceId, EstablishmentId, InvitationId, OrganizationId, PartnerCompanyId, RoleId,
    UserId,
};
pub use model::{
    Area, Device, DeviceStatus, Establishment, Organization, PartnerCompany, User,
    UserEstablishment,
};
// The inputs of `Tenancy`'s create calls, and the memory store, where a
// partner looks for them first.
pub use memory::MemoryTenancyStore;
pub use model::{
    NewArea, NewDevice, NewEstablishment, NewOrganization, NewPartnerCompany, NewUser,
};
pub use principal::{Principal, Resource, Scope};
pub use role::{Hierarchy, Role, SystemRole};
pub use rules::{Denied, authorize};
pub use secret::{Secret, SecretHash};
pub use store::{Listing, Page, Target, TenancyStore};
pub use tenancy::{Suspended, Tenancy, UserCreation};

#[doc(hidden)]
pub mod __private {
    //! Re-exports used by [`define_id!`](crate::define_id); not public API.
    pub use serde;
    #[cfg(feature = "openapi")]
    pub use utoipa;
    pub use uuid;
}
