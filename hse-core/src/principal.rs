//! Who is acting ([`Principal`]) and what they can see ([`Scope`]).
//!
//! A principal is built once per request from the user's role, tenancy and
//! establishment assignments (or from an API key, with fewer permissions).
//! Its [`Scope`] is passed to every store call: stores return only what the
//! scope contains, so a forgotten check shows nothing rather than everything.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::action::ActionName;
use crate::id::{EstablishmentId, OrganizationId, PartnerCompanyId, RoleId, UserId};
use crate::role::{Hierarchy, SystemRole};

/// An authenticated actor: a user, or an API key acting for one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The user acting (for an API key: the key's creator).
    pub user_id: UserId,
    /// The user's role.
    pub role_id: RoleId,
    /// The role's rank.
    pub hierarchy: Hierarchy,
    /// The partner company the user belongs to, if any.
    pub partner_company_id: Option<PartnerCompanyId>,
    /// The organization the user belongs to, if any.
    pub organization_id: Option<OrganizationId>,
    /// The actions the role grants everywhere in the scope.
    pub permissions: BTreeSet<ActionName>,
    /// Assigned establishments, each with the extra actions an
    /// establishment-specific role grants there (often none).
    pub establishments: BTreeMap<EstablishmentId, BTreeSet<ActionName>>,
}

impl Principal {
    /// The system level of the principal's role, if it has one.
    #[must_use]
    pub fn system_role(&self) -> Option<SystemRole> {
        self.hierarchy.system_role()
    }

    /// What this principal may see.
    ///
    /// Root sees everything; a partner its partner company; everyone else
    /// its organization, narrowed to the establishments assigned to it. A
    /// principal whose tenancy does not fit its rank sees nothing.
    #[must_use]
    pub fn scope(&self) -> Scope {
        match (
            self.system_role(),
            self.partner_company_id,
            self.organization_id,
        ) {
            (Some(SystemRole::Root), _, _) => Scope::Platform,
            (Some(SystemRole::Partner), Some(partner_company_id), _) => {
                Scope::Partner { partner_company_id }
            }
            (Some(SystemRole::Partner), None, _) => Scope::Nothing,
            (_, _, Some(organization_id)) => Scope::Organization {
                organization_id,
                establishments: self.establishments.keys().copied().collect(),
            },
            (_, _, None) => Scope::Nothing,
        }
    }

    /// Whether the principal holds `action` for something placed at
    /// `resource` (role-wide, or through an establishment assignment).
    #[must_use]
    pub fn holds(&self, action: &ActionName, resource: &Resource) -> bool {
        self.permissions.contains(action)
            || resource
                .establishment_id
                .and_then(|e| self.establishments.get(&e))
                .is_some_and(|extra| extra.contains(action))
    }
}

/// The part of the tenant tree a principal may see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Everything (root, and system tasks).
    Platform,
    /// One partner company, its organizations and their establishments.
    Partner {
        /// The partner company.
        partner_company_id: PartnerCompanyId,
    },
    /// One organization, and of its establishments only those listed.
    Organization {
        /// The organization.
        organization_id: OrganizationId,
        /// The establishments assigned to the principal.
        establishments: BTreeSet<EstablishmentId>,
    },
    /// Nothing at all.
    Nothing,
}

impl Scope {
    /// Whether something placed at `resource` is inside this scope.
    ///
    /// The rule, in full: root sees all; a partner scope sees what belongs
    /// to its partner company; an organization scope sees what belongs to
    /// its organization and, when the thing lives in an establishment, only
    /// if that establishment is assigned.
    #[must_use]
    pub fn contains(&self, resource: &Resource) -> bool {
        match self {
            Self::Platform => true,
            Self::Partner { partner_company_id } => {
                resource.partner_company_id == Some(*partner_company_id)
            }
            Self::Organization {
                organization_id,
                establishments,
            } => {
                resource.organization_id == Some(*organization_id)
                    && resource
                        .establishment_id
                        .is_none_or(|e| establishments.contains(&e))
            }
            Self::Nothing => false,
        }
    }
}

/// Where a thing lives in the tenant tree; the unit of authorization.
///
/// Build it from the entity's own tenancy, never from the request: a
/// device's resource is its establishment's organization's partner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// The partner company that owns it, if any.
    pub partner_company_id: Option<PartnerCompanyId>,
    /// The organization that owns it, if any.
    pub organization_id: Option<OrganizationId>,
    /// The establishment it lives in, if any.
    pub establishment_id: Option<EstablishmentId>,
}

impl Resource {
    /// Something owned by the platform itself (only root reaches it).
    #[must_use]
    pub fn platform() -> Self {
        Self::default()
    }

    /// A partner company itself.
    #[must_use]
    pub fn partner_company(id: PartnerCompanyId) -> Self {
        Self {
            partner_company_id: Some(id),
            ..Self::default()
        }
    }

    /// An organization (with its partner, if it has one).
    #[must_use]
    pub fn organization(partner: Option<PartnerCompanyId>, id: OrganizationId) -> Self {
        Self {
            partner_company_id: partner,
            organization_id: Some(id),
            establishment_id: None,
        }
    }

    /// This resource narrowed to an establishment of its organization.
    #[must_use]
    pub fn in_establishment(self, id: EstablishmentId) -> Self {
        Self {
            establishment_id: Some(id),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(
        role: SystemRole,
        partner: Option<PartnerCompanyId>,
        org: Option<OrganizationId>,
    ) -> Principal {
        Principal {
            user_id: UserId::new(),
            role_id: role.id(),
            hierarchy: role.hierarchy(),
            partner_company_id: partner,
            organization_id: org,
            permissions: role.default_permissions(),
            establishments: BTreeMap::new(),
        }
    }

    #[test]
    fn a_partner_sees_its_own_organizations_but_not_others_nor_platform_direct_ones() {
        let (mine, other) = (PartnerCompanyId::new(), PartnerCompanyId::new());
        let scope = principal(SystemRole::Partner, Some(mine), None).scope();
        assert!(scope.contains(&Resource::organization(Some(mine), OrganizationId::new())));
        assert!(!scope.contains(&Resource::organization(Some(other), OrganizationId::new())));
        assert!(!scope.contains(&Resource::organization(None, OrganizationId::new())));
    }

    #[test]
    fn an_admin_sees_only_assigned_establishments_of_its_organization() {
        let org = OrganizationId::new();
        let (assigned, unassigned) = (EstablishmentId::new(), EstablishmentId::new());
        let mut admin = principal(SystemRole::Admin, None, Some(org));
        admin.establishments.insert(assigned, BTreeSet::new());
        let scope = admin.scope();
        let org_res = Resource::organization(None, org);
        assert!(scope.contains(&org_res));
        assert!(scope.contains(&org_res.in_establishment(assigned)));
        assert!(!scope.contains(&org_res.in_establishment(unassigned)));
        assert!(!scope.contains(&Resource::organization(None, OrganizationId::new())));
    }

    #[test]
    fn root_sees_everything_and_a_misplaced_partner_sees_nothing() {
        assert_eq!(
            principal(SystemRole::Root, None, None).scope(),
            Scope::Platform
        );
        let lost = principal(SystemRole::Partner, None, None).scope();
        assert_eq!(lost, Scope::Nothing);
        assert!(!lost.contains(&Resource::platform()));
    }

    #[test]
    fn establishment_roles_add_permissions_only_in_their_establishment() {
        let org = OrganizationId::new();
        let (here, there) = (EstablishmentId::new(), EstablishmentId::new());
        let mut user = principal(SystemRole::User, None, Some(org));
        let create_booking = ActionName::parse("create_booking").unwrap();
        user.establishments
            .insert(here, BTreeSet::from([create_booking.clone()]));
        let base = Resource::organization(None, org);
        assert!(user.holds(&create_booking, &base.in_establishment(here)));
        assert!(!user.holds(&create_booking, &base.in_establishment(there)));
        assert!(!user.holds(&create_booking, &base));
    }
}
