//! Whether a place of the tenant tree is suspended: its organization or
//! partner company has `is_active = false`.
//!
//! A suspended tenant's users have no principal (the store refuses to
//! build one), so they cannot sign in, use a token or an API key. What
//! else stops is up to the callers of [`Tenancy::suspension`]: the server
//! refuses commands to a suspended tenant's devices and its booking
//! workers leave its door codes unprogrammed (see the README).

use super::Tenancy;
use crate::error::{CoreError, Result};
use crate::id::{OrganizationId, PartnerCompanyId};
use crate::principal::{Resource, Scope};

/// The suspended level above a place of the tenant tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspended {
    /// The partner company (and with it all its organizations).
    PartnerCompany(PartnerCompanyId),
    /// The organization.
    Organization(OrganizationId),
}

impl Suspended {
    /// `partner company` or `organization`, for messages.
    #[must_use]
    pub fn level(&self) -> &'static str {
        match self {
            Self::PartnerCompany(_) => "partner company",
            Self::Organization(_) => "organization",
        }
    }
}

impl std::fmt::Display for Suspended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} is suspended", self.level())
    }
}

impl Tenancy {
    /// Which level above `resource` is suspended, if any: its partner
    /// company first, then its organization. A level that no longer exists
    /// suspends nothing. *System path*: read afresh on every call.
    ///
    /// # Errors
    /// [`CoreError::Storage`] when the store fails.
    pub async fn suspension(&self, resource: &Resource) -> Result<Option<Suspended>> {
        if let Some(id) = resource.partner_company_id {
            match self.store.partner_company(&Scope::Platform, id).await {
                Ok(company) if !company.is_active => {
                    return Ok(Some(Suspended::PartnerCompany(id)));
                }
                Ok(_) | Err(CoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(id) = resource.organization_id {
            match self.store.organization(&Scope::Platform, id).await {
                Ok(org) if !org.is_active => return Ok(Some(Suspended::Organization(id))),
                Ok(_) | Err(CoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
