//! The tenancy model: plain data, validated on the way in.
//!
//! Each entity comes with a `New*` input (what a caller supplies to create
//! one) and a `*Patch` (a partial update). Both are checked by pure methods
//! here, so every store applies exactly the same rules. One file per
//! entity: `tenants` (partner companies, organizations), `establishments`,
//! `areas`, `devices`, `users`.

mod areas;
mod devices;
mod establishments;
mod tenants;
mod users;

#[cfg(test)]
mod tests;

pub use areas::{Area, AreaPatch, NewArea};
pub use devices::{Device, DevicePatch, DeviceStatus, NewDevice};
pub use establishments::{Establishment, EstablishmentPatch, NewEstablishment};
pub use tenants::{
    NewOrganization, NewPartnerCompany, Organization, OrganizationPatch, PartnerCompany,
    PartnerCompanyPatch,
};
pub use users::{NewUser, User, UserEstablishment, UserPatch};

const NAME_MAX: usize = 200;
const FIELD_MAX: usize = 500;
