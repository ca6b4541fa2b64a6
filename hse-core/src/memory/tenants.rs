//! Partner companies and organizations in memory; deleting one withdraws
//! its invitations, as the schema's cascades do.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryTenancyStore;
use super::state::{fresh, in_use, listing};
use crate::error::{CoreError, Result};
use crate::id::{OrganizationId, PartnerCompanyId};
use crate::invitation::InvitationTarget;
use crate::model::{Organization, OrganizationPatch, PartnerCompany, PartnerCompanyPatch};
use crate::principal::{Resource, Scope};
use crate::store::{Listing, OrganizationStore, Page, PartnerCompanyStore, Target};

#[async_trait]
impl PartnerCompanyStore for MemoryTenancyStore {
    async fn insert_partner_company(&self, scope: &Scope, company: &PartnerCompany) -> Result<()> {
        if !scope.contains(&Resource::platform()) {
            return Err(CoreError::not_found("partner company"));
        }
        let mut st = self.state()?;
        fresh(&st.partners, &company.id, "partner company")?;
        st.partners.insert(company.id, company.clone());
        Ok(())
    }

    async fn partner_company(&self, scope: &Scope, id: PartnerCompanyId) -> Result<PartnerCompany> {
        let st = self.state()?;
        st.require(scope, Target::PartnerCompany(id), "partner company")?;
        st.partners
            .get(&id)
            .cloned()
            .ok_or(CoreError::not_found("partner company"))
    }

    async fn list_partner_companies(
        &self,
        scope: &Scope,
        page: Page,
    ) -> Result<Listing<PartnerCompany>> {
        let st = self.state()?;
        let visible = st
            .partners
            .values()
            .filter(|p| st.sees(scope, Target::PartnerCompany(p.id)));
        Ok(listing(visible, page, |p| p.id.0))
    }

    async fn update_partner_company(
        &self,
        scope: &Scope,
        id: PartnerCompanyId,
        patch: PartnerCompanyPatch,
        now: DateTime<Utc>,
    ) -> Result<PartnerCompany> {
        let mut st = self.state()?;
        st.require(scope, Target::PartnerCompany(id), "partner company")?;
        let company = st
            .partners
            .get_mut(&id)
            .ok_or(CoreError::not_found("partner company"))?;
        patch.apply(company, now)?;
        Ok(company.clone())
    }

    async fn delete_partner_company(&self, scope: &Scope, id: PartnerCompanyId) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::PartnerCompany(id), "partner company")?;
        let used = st
            .organizations
            .values()
            .any(|o| o.partner_company_id == Some(id))
            || st
                .users
                .values()
                .any(|(u, _)| u.partner_company_id == Some(id));
        if used {
            return Err(in_use(
                "partner company",
                "it still has organizations or users",
            ));
        }
        st.invitations
            .retain(|_, i| i.target != InvitationTarget::PartnerCompany(id));
        st.partners.remove(&id);
        Ok(())
    }
}

#[async_trait]
impl OrganizationStore for MemoryTenancyStore {
    async fn insert_organization(&self, scope: &Scope, org: &Organization) -> Result<()> {
        let mut st = self.state()?;
        match org.partner_company_id {
            Some(p) => st.require(scope, Target::PartnerCompany(p), "partner company")?,
            None if !scope.contains(&Resource::platform()) => {
                return Err(CoreError::not_found("partner company"));
            }
            None => {}
        }
        fresh(&st.organizations, &org.id, "organization")?;
        st.organizations.insert(org.id, org.clone());
        Ok(())
    }

    async fn organization(&self, scope: &Scope, id: OrganizationId) -> Result<Organization> {
        let st = self.state()?;
        st.require(scope, Target::Organization(id), "organization")?;
        st.organizations
            .get(&id)
            .cloned()
            .ok_or(CoreError::not_found("organization"))
    }

    async fn list_organizations(&self, scope: &Scope, page: Page) -> Result<Listing<Organization>> {
        let st = self.state()?;
        let visible = st
            .organizations
            .values()
            .filter(|o| st.sees(scope, Target::Organization(o.id)));
        Ok(listing(visible, page, |o| o.id.0))
    }

    async fn update_organization(
        &self,
        scope: &Scope,
        id: OrganizationId,
        patch: OrganizationPatch,
        now: DateTime<Utc>,
    ) -> Result<Organization> {
        let mut st = self.state()?;
        st.require(scope, Target::Organization(id), "organization")?;
        let org = st
            .organizations
            .get_mut(&id)
            .ok_or(CoreError::not_found("organization"))?;
        patch.apply(org, now)?;
        Ok(org.clone())
    }

    async fn delete_organization(&self, scope: &Scope, id: OrganizationId) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::Organization(id), "organization")?;
        let used = st.establishments.values().any(|e| e.organization_id == id)
            || st
                .users
                .values()
                .any(|(u, _)| u.organization_id == Some(id))
            || st.roles.values().any(|r| r.organization_id == Some(id));
        if used {
            return Err(in_use(
                "organization",
                "it still has establishments, users or roles",
            ));
        }
        st.invitations
            .retain(|_, i| i.target != InvitationTarget::Organization(id));
        st.organizations.remove(&id);
        Ok(())
    }
}
