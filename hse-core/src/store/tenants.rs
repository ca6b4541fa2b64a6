//! The ports of the two tenant levels: partner companies and organizations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Listing, Page};
use crate::error::Result;
use crate::id::{OrganizationId, PartnerCompanyId};
use crate::model::{Organization, OrganizationPatch, PartnerCompany, PartnerCompanyPatch};
use crate::principal::Scope;

/// Partner companies. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait PartnerCompanyStore: Send + Sync {
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
    /// Deletes it with the invitations to it; [`CoreError::InUse`](crate::CoreError::InUse) while
    /// organizations or users refer to it.
    async fn delete_partner_company(&self, scope: &Scope, id: PartnerCompanyId) -> Result<()>;
}

/// Organizations. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait OrganizationStore: Send + Sync {
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
    /// Deletes it with the invitations to it; [`CoreError::InUse`](crate::CoreError::InUse) while
    /// establishments, users or custom roles refer to it.
    async fn delete_organization(&self, scope: &Scope, id: OrganizationId) -> Result<()>;
}
