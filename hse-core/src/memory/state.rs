//! The in-memory store's state and the checks its writes share: where
//! each entity sits in the tenant tree, scope, placement and uniqueness.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::id::{
    AreaId, DeviceId, EstablishmentId, InvitationId, OrganizationId, PartnerCompanyId, RoleId,
    UserId,
};
use crate::invitation::Invitation;
use crate::model::{
    Area, Device, Establishment, Organization, PartnerCompany, User, UserEstablishment,
};
use crate::principal::{Resource, Scope};
use crate::role::{Hierarchy, PermissionGrant, Role, SystemRole};
use crate::secret::SecretHash;
use crate::store::{Listing, Page, Target};
use crate::value::Email;

/// Everything the store holds, behind its one mutex.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) partners: BTreeMap<PartnerCompanyId, PartnerCompany>,
    pub(super) organizations: BTreeMap<OrganizationId, Organization>,
    pub(super) establishments: BTreeMap<EstablishmentId, Establishment>,
    pub(super) areas: BTreeMap<AreaId, Area>,
    pub(super) devices: BTreeMap<DeviceId, (Device, SecretHash)>,
    pub(super) users: BTreeMap<UserId, (User, Option<String>)>,
    pub(super) roles: BTreeMap<RoleId, Role>,
    pub(super) grants: BTreeMap<RoleId, Vec<PermissionGrant>>,
    pub(super) assignments: BTreeMap<(UserId, EstablishmentId), UserEstablishment>,
    pub(super) invitations: BTreeMap<InvitationId, Invitation>,
}

/// One page of `items` (in id order) after the page's cursor.
pub(super) fn listing<'a, T: Clone + 'a>(
    items: impl Iterator<Item = &'a T>,
    page: Page,
    id: impl Fn(&T) -> Uuid + Copy,
) -> Listing<T> {
    let after = page.after().unwrap_or(Uuid::nil());
    let fetched: Vec<T> = items
        .filter(|t| id(t) > after)
        .take(page.limit() as usize + 1)
        .cloned()
        .collect();
    Listing::from_overfetch(fetched, page, id)
}

impl State {
    pub(super) fn org_resource(&self, id: OrganizationId) -> Option<Resource> {
        let org = self.organizations.get(&id)?;
        Some(Resource::organization(org.partner_company_id, id))
    }

    pub(super) fn est_resource(&self, id: EstablishmentId) -> Option<Resource> {
        let est = self.establishments.get(&id)?;
        Some(self.org_resource(est.organization_id)?.in_establishment(id))
    }

    /// Whether the partner company or organization `resource` belongs to
    /// is suspended (inactive).
    pub(super) fn suspended(&self, resource: &Resource) -> bool {
        let org_off = resource
            .organization_id
            .and_then(|o| self.organizations.get(&o))
            .is_some_and(|o| !o.is_active);
        let partner_off = resource
            .partner_company_id
            .and_then(|p| self.partners.get(&p))
            .is_some_and(|p| !p.is_active);
        org_off || partner_off
    }

    pub(super) fn user_resource(&self, user: &User) -> Resource {
        match (user.organization_id, user.partner_company_id) {
            (Some(org), _) => self.org_resource(org).unwrap_or_default(),
            (None, Some(p)) => Resource::partner_company(p),
            (None, None) => Resource::platform(),
        }
    }

    pub(super) fn role_resource(&self, role: &Role) -> Option<Resource> {
        let base = self.org_resource(role.organization_id?)?;
        Some(match role.establishment_id {
            Some(e) => base.in_establishment(e),
            None => base,
        })
    }

    pub(super) fn locate(&self, target: Target) -> Option<Resource> {
        match target {
            Target::PartnerCompany(id) => self
                .partners
                .contains_key(&id)
                .then(|| Resource::partner_company(id)),
            Target::Organization(id) => self.org_resource(id),
            Target::Establishment(id) => self.est_resource(id),
            Target::Area(id) => self.est_resource(self.areas.get(&id)?.establishment_id),
            Target::Device(id) => self.est_resource(self.devices.get(&id)?.0.establishment_id),
            Target::User(id) => self.users.get(&id).map(|(u, _)| self.user_resource(u)),
            Target::Role(id) => match SystemRole::from_id(id) {
                Some(_) => Some(Resource::platform()),
                None => self.role_resource(self.roles.get(&id)?),
            },
        }
    }

    pub(super) fn sees(&self, scope: &Scope, target: Target) -> bool {
        self.locate(target).is_some_and(|r| scope.contains(&r))
    }

    pub(super) fn require(
        &self,
        scope: &Scope,
        target: Target,
        entity: &'static str,
    ) -> Result<()> {
        if self.sees(scope, target) {
            Ok(())
        } else {
            Err(CoreError::not_found(entity))
        }
    }

    pub(super) fn role(&self, id: RoleId) -> Option<Role> {
        SystemRole::from_id(id)
            .map(SystemRole::role)
            .or_else(|| self.roles.get(&id).cloned())
    }

    pub(super) fn area_is_inside(&self, area: AreaId, ancestor: AreaId) -> bool {
        let mut current = Some(area);
        let mut steps = 0;
        while let Some(id) = current {
            if id == ancestor {
                return true;
            }
            steps += 1;
            if steps > self.areas.len() {
                return true;
            }
            current = self.areas.get(&id).and_then(|a| a.parent_area_id);
        }
        false
    }

    pub(super) fn email_taken(&self, email: &Email) -> bool {
        self.users.values().any(|(u, _)| &u.email == email)
    }

    pub(super) fn check_user_placement(&self, user: &User) -> Result<()> {
        if let Some(p) = user.partner_company_id
            && user.organization_id.is_none()
            && !self.partners.contains_key(&p)
        {
            return Err(CoreError::not_found("partner company"));
        }
        if let Some(o) = user.organization_id
            && !self.organizations.contains_key(&o)
        {
            return Err(CoreError::not_found("organization"));
        }
        self.check_role(user.role_id, user.organization_id)
    }

    /// Refuses, as missing, a role that does not exist or is a custom role
    /// of another organization than `organization` (the trigger of
    /// migration 2 says the same).
    pub(super) fn check_role(
        &self,
        id: RoleId,
        organization: Option<OrganizationId>,
    ) -> Result<()> {
        let role = self.role(id).ok_or(CoreError::not_found("role"))?;
        if role.organization_id.is_some() && role.organization_id != organization {
            return Err(CoreError::not_found("role"));
        }
        Ok(())
    }

    /// Refuses, like PostgreSQL, a user whose placement is out of scope or
    /// whose partner disagrees with its organization's.
    pub(super) fn check_scoped_placement(&self, scope: &Scope, user: &User) -> Result<()> {
        match (user.organization_id, user.partner_company_id) {
            (Some(org), partner) => {
                self.require(scope, Target::Organization(org), "organization")?;
                let own = self
                    .organizations
                    .get(&org)
                    .and_then(|o| o.partner_company_id);
                if partner.is_some() && partner != own {
                    return Err(CoreError::invalid(
                        "partner_company_id",
                        "must be the partner company of the user's organization",
                    ));
                }
                Ok(())
            }
            (None, Some(partner)) => {
                self.require(scope, Target::PartnerCompany(partner), "partner company")
            }
            (None, None) if scope.contains(&Resource::platform()) => Ok(()),
            (None, None) => Err(CoreError::not_found("organization")),
        }
    }

    pub(super) fn insert_user(&mut self, user: &User, password_hash: Option<&str>) -> Result<()> {
        self.check_user_placement(user)?;
        fresh(&self.users, &user.id, "user")?;
        if self.email_taken(&user.email) {
            return Err(CoreError::AlreadyExists {
                entity: "user",
                detail: format!("email {}", user.email),
            });
        }
        let mut stored = user.clone();
        if let Some(org) = user.organization_id {
            stored.partner_company_id = self
                .organizations
                .get(&org)
                .and_then(|o| o.partner_company_id);
        }
        self.users
            .insert(user.id, (stored, password_hash.map(str::to_owned)));
        Ok(())
    }

    pub(super) fn invitation_by_token(&mut self, token: SecretHash) -> Option<&mut Invitation> {
        self.invitations
            .values_mut()
            .find(|i| i.token_hash == Some(token))
    }
}

/// The refusal of a delete while something refers to the entity.
pub(super) fn in_use(entity: &'static str, detail: &str) -> CoreError {
    CoreError::InUse {
        entity,
        detail: detail.to_owned(),
    }
}

/// Refuses a second entity with an id that is already stored.
pub(super) fn fresh<K: Ord, V>(
    stored: &BTreeMap<K, V>,
    id: &K,
    entity: &'static str,
) -> Result<()> {
    if stored.contains_key(id) {
        return Err(CoreError::AlreadyExists {
            entity,
            detail: "an entity with this id exists".to_owned(),
        });
    }
    Ok(())
}

/// Refuses a system role or a custom one ranked below 5 (or beyond what
/// PostgreSQL's `smallint` holds).
pub(super) fn check_custom_hierarchy(role: &Role) -> Result<()> {
    if role.is_system() || role.hierarchy < Hierarchy::FIRST_CUSTOM {
        return Err(CoreError::invalid(
            "hierarchy",
            "a custom role ranks 5 or more",
        ));
    }
    if i16::try_from(role.hierarchy.get()).is_err() {
        return Err(CoreError::invalid("hierarchy", "must be at most 32767"));
    }
    Ok(())
}
