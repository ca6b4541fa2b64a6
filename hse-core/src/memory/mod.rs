//! In-memory adapter of the [`TenancyStore`] port.
//!
//! It is the embedded default of `hse-server` and the test double partners
//! use in their own tests, so it keeps every guarantee the PostgreSQL adapter
//! keeps: scope filtering, in-tenant references, uniqueness, tree shape,
//! atomic updates and the schema's cascades (deleting a partner company, an
//! organization or a role withdraws its invitations). One mutex serialises
//! all writes, which is what makes "check, then write" atomic here; nothing
//! is held across an `.await`.

mod state;

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use self::state::{State, check_custom_hierarchy, fresh, in_use, listing};
use crate::error::{CoreError, Result};
use crate::id::{
    AreaId, DeviceId, EstablishmentId, OrganizationId, PartnerCompanyId, RoleId, UserId,
};
use crate::invitation::{Invitation, InvitationStatus, InvitationTarget};
use crate::model::{
    Area, AreaPatch, Device, DevicePatch, DeviceStatus, Establishment, EstablishmentPatch,
    Organization, OrganizationPatch, PartnerCompany, PartnerCompanyPatch, User, UserEstablishment,
    UserPatch,
};
use crate::principal::{Principal, Resource, Scope};
use crate::role::{PermissionGrant, Role, SystemRole};
use crate::secret::SecretHash;
use crate::store::{Credentials, Listing, Page, Target, TenancyStore};
use crate::value::Email;

/// The in-memory store. Cheap to create; share it behind an `Arc`.
///
/// Nothing is durable: for trying the SDK, tests and demos. The same
/// [`crate::Tenancy`] runs over `hse_core::postgres::PgStore` in
/// production; `examples/embed_sdk.rs` shows the memory stores in use,
/// `examples/embed_postgres.rs` the PostgreSQL ones.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store (system roles and the catalogue are built in).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| CoreError::Storage("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl TenancyStore for MemoryStore {
    async fn locate(&self, target: Target) -> Result<Option<Resource>> {
        Ok(self.state()?.locate(target))
    }

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

    async fn insert_establishment(
        &self,
        scope: &Scope,
        est: &Establishment,
        assign_to: Option<UserId>,
    ) -> Result<()> {
        let mut st = self.state()?;
        st.require(
            scope,
            Target::Organization(est.organization_id),
            "organization",
        )?;
        fresh(&st.establishments, &est.id, "establishment")?;
        if let Some(user) = assign_to {
            let member = st
                .users
                .get(&user)
                .is_some_and(|(u, _)| u.organization_id == Some(est.organization_id));
            if !member {
                return Err(CoreError::not_found("user"));
            }
            st.assignments.insert(
                (user, est.id),
                UserEstablishment {
                    user_id: user,
                    establishment_id: est.id,
                    role_id: None,
                    assigned_at: est.created_at,
                    assigned_by: Some(user),
                },
            );
        }
        st.establishments.insert(est.id, est.clone());
        Ok(())
    }

    async fn establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<Establishment> {
        let st = self.state()?;
        st.require(scope, Target::Establishment(id), "establishment")?;
        st.establishments
            .get(&id)
            .cloned()
            .ok_or(CoreError::not_found("establishment"))
    }

    async fn list_establishments(
        &self,
        scope: &Scope,
        page: Page,
    ) -> Result<Listing<Establishment>> {
        let st = self.state()?;
        let visible = st
            .establishments
            .values()
            .filter(|e| st.sees(scope, Target::Establishment(e.id)));
        Ok(listing(visible, page, |e| e.id.0))
    }

    async fn update_establishment(
        &self,
        scope: &Scope,
        id: EstablishmentId,
        patch: EstablishmentPatch,
        now: DateTime<Utc>,
    ) -> Result<Establishment> {
        let mut st = self.state()?;
        st.require(scope, Target::Establishment(id), "establishment")?;
        let est = st
            .establishments
            .get_mut(&id)
            .ok_or(CoreError::not_found("establishment"))?;
        patch.apply(est, now)?;
        Ok(est.clone())
    }

    async fn delete_establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::Establishment(id), "establishment")?;
        let used = st.areas.values().any(|a| a.establishment_id == id)
            || st.roles.values().any(|r| r.establishment_id == Some(id));
        if used {
            return Err(in_use("establishment", "it still has areas or roles"));
        }
        st.establishments.remove(&id);
        st.assignments.retain(|(_, e), _| *e != id);
        Ok(())
    }

    async fn insert_area(&self, scope: &Scope, area: &Area) -> Result<()> {
        let mut st = self.state()?;
        st.require(
            scope,
            Target::Establishment(area.establishment_id),
            "establishment",
        )?;
        if let Some(parent) = area.parent_area_id {
            let same = st
                .areas
                .get(&parent)
                .is_some_and(|p| p.establishment_id == area.establishment_id);
            if !same {
                return Err(CoreError::not_found("parent area"));
            }
        }
        fresh(&st.areas, &area.id, "area")?;
        st.areas.insert(area.id, area.clone());
        Ok(())
    }

    async fn area(&self, scope: &Scope, id: AreaId) -> Result<Area> {
        let st = self.state()?;
        st.require(scope, Target::Area(id), "area")?;
        st.areas
            .get(&id)
            .cloned()
            .ok_or(CoreError::not_found("area"))
    }

    async fn list_areas(
        &self,
        scope: &Scope,
        establishment: Option<EstablishmentId>,
        page: Page,
    ) -> Result<Listing<Area>> {
        let st = self.state()?;
        let visible = st
            .areas
            .values()
            .filter(|a| establishment.is_none_or(|e| a.establishment_id == e))
            .filter(|a| st.sees(scope, Target::Area(a.id)));
        Ok(listing(visible, page, |a| a.id.0))
    }

    async fn update_area(
        &self,
        scope: &Scope,
        id: AreaId,
        patch: AreaPatch,
        now: DateTime<Utc>,
    ) -> Result<Area> {
        let mut st = self.state()?;
        st.require(scope, Target::Area(id), "area")?;
        let mut area = st
            .areas
            .get(&id)
            .cloned()
            .ok_or(CoreError::not_found("area"))?;
        patch.apply(&mut area, now)?;
        if let Some(parent) = area.parent_area_id {
            let same = st
                .areas
                .get(&parent)
                .is_some_and(|p| p.establishment_id == area.establishment_id);
            if !same {
                return Err(CoreError::not_found("parent area"));
            }
            if st.area_is_inside(parent, id) {
                return Err(CoreError::invalid(
                    "parent_area_id",
                    "the new parent is inside this area",
                ));
            }
        }
        st.areas.insert(id, area.clone());
        Ok(area)
    }

    async fn delete_area(&self, scope: &Scope, id: AreaId) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::Area(id), "area")?;
        let used = st.areas.values().any(|a| a.parent_area_id == Some(id))
            || st.devices.values().any(|(d, _)| d.area_id == id);
        if used {
            return Err(in_use("area", "it still has sub-areas or devices"));
        }
        st.areas.remove(&id);
        Ok(())
    }

    async fn insert_device(
        &self,
        scope: &Scope,
        device: &Device,
        secret: SecretHash,
    ) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::Area(device.area_id), "area")?;
        let same = st
            .areas
            .get(&device.area_id)
            .is_some_and(|a| a.establishment_id == device.establishment_id);
        if !same {
            return Err(CoreError::not_found("area"));
        }
        fresh(&st.devices, &device.id, "device")?;
        st.devices.insert(device.id, (device.clone(), secret));
        Ok(())
    }

    async fn device(&self, scope: &Scope, id: DeviceId) -> Result<Device> {
        let st = self.state()?;
        st.require(scope, Target::Device(id), "device")?;
        st.devices
            .get(&id)
            .map(|(d, _)| d.clone())
            .ok_or(CoreError::not_found("device"))
    }

    async fn list_devices(
        &self,
        scope: &Scope,
        area: Option<AreaId>,
        page: Page,
    ) -> Result<Listing<Device>> {
        let st = self.state()?;
        let visible = st
            .devices
            .values()
            .map(|(d, _)| d)
            .filter(|d| area.is_none_or(|a| d.area_id == a))
            .filter(|d| st.sees(scope, Target::Device(d.id)));
        Ok(listing(visible, page, |d| d.id.0))
    }

    async fn update_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        patch: DevicePatch,
        now: DateTime<Utc>,
    ) -> Result<Device> {
        let mut st = self.state()?;
        st.require(scope, Target::Device(id), "device")?;
        let (mut device, secret) = st
            .devices
            .get(&id)
            .cloned()
            .ok_or(CoreError::not_found("device"))?;
        patch.apply(&mut device, now)?;
        let same = st
            .areas
            .get(&device.area_id)
            .is_some_and(|a| a.establishment_id == device.establishment_id);
        if !same {
            return Err(CoreError::not_found("area"));
        }
        st.devices.insert(id, (device.clone(), secret));
        Ok(device)
    }

    async fn delete_device(&self, scope: &Scope, id: DeviceId) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::Device(id), "device")?;
        st.devices.remove(&id);
        Ok(())
    }

    async fn device_secret_hash(&self, id: DeviceId) -> Result<Option<SecretHash>> {
        Ok(self.state()?.devices.get(&id).map(|(_, s)| *s))
    }

    async fn set_device_status(
        &self,
        id: DeviceId,
        status: DeviceStatus,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut st = self.state()?;
        let (device, _) = st
            .devices
            .get_mut(&id)
            .ok_or(CoreError::not_found("device"))?;
        device.status = status;
        device.updated_at = now;
        Ok(())
    }

    async fn insert_user(
        &self,
        scope: &Scope,
        user: &User,
        password_hash: Option<&str>,
    ) -> Result<()> {
        let mut st = self.state()?;
        st.check_scoped_placement(scope, user)?;
        st.insert_user(user, password_hash)
    }

    async fn user(&self, scope: &Scope, id: UserId) -> Result<User> {
        let st = self.state()?;
        st.require(scope, Target::User(id), "user")?;
        st.users
            .get(&id)
            .map(|(u, _)| u.clone())
            .ok_or(CoreError::not_found("user"))
    }

    async fn list_users(&self, scope: &Scope, page: Page) -> Result<Listing<User>> {
        let st = self.state()?;
        let visible = st
            .users
            .values()
            .map(|(u, _)| u)
            .filter(|u| scope.contains(&st.user_resource(u)));
        Ok(listing(visible, page, |u| u.id.0))
    }

    async fn update_user(
        &self,
        scope: &Scope,
        id: UserId,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let mut st = self.state()?;
        st.require(scope, Target::User(id), "user")?;
        let (user, _) = st.users.get_mut(&id).ok_or(CoreError::not_found("user"))?;
        patch.apply(user, now)?;
        Ok(user.clone())
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>> {
        let st = self.state()?;
        Ok(st
            .users
            .values()
            .find(|(u, _)| &u.email == email)
            .map(|(u, h)| Credentials {
                user: u.clone(),
                password_hash: h.clone(),
            }))
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut st = self.state()?;
        let (user, hash) = st.users.get_mut(&id).ok_or(CoreError::not_found("user"))?;
        *hash = Some(password_hash.to_owned());
        user.updated_at = now;
        Ok(())
    }

    async fn principal(&self, id: UserId) -> Result<Principal> {
        let st = self.state()?;
        let user = st
            .users
            .get(&id)
            .map(|(u, _)| u)
            .filter(|u| u.is_active && !st.suspended(&st.user_resource(u)))
            .ok_or(CoreError::not_found("user"))?;
        let role = st.role(user.role_id).ok_or(CoreError::not_found("role"))?;
        let establishments = st
            .assignments
            .values()
            .filter(|a| a.user_id == id)
            .map(|a| {
                let extra = a
                    .role_id
                    .and_then(|r| st.role(r))
                    .map(|r| r.permissions)
                    .unwrap_or_default();
                (a.establishment_id, extra)
            })
            .collect();
        Ok(Principal {
            user_id: id,
            role_id: role.id,
            hierarchy: role.hierarchy,
            partner_company_id: user.partner_company_id,
            organization_id: user.organization_id,
            permissions: role.permissions,
            establishments,
        })
    }

    async fn insert_role(&self, scope: &Scope, role: &Role) -> Result<()> {
        check_custom_hierarchy(role)?;
        let mut st = self.state()?;
        let org = role.organization_id.ok_or(CoreError::invalid(
            "organization_id",
            "a custom role needs one",
        ))?;
        st.require(scope, Target::Organization(org), "organization")?;
        if let Some(e) = role.establishment_id {
            let same = st
                .establishments
                .get(&e)
                .is_some_and(|est| est.organization_id == org);
            if !same || !st.sees(scope, Target::Establishment(e)) {
                return Err(CoreError::not_found("establishment"));
            }
        }
        fresh(&st.roles, &role.id, "role")?;
        let grants = role
            .permissions
            .iter()
            .map(|action| PermissionGrant {
                role_id: role.id,
                action: action.clone(),
                granted_by: role.created_by,
                granted_at: role.created_at,
            })
            .collect();
        st.grants.insert(role.id, grants);
        st.roles.insert(role.id, role.clone());
        Ok(())
    }

    async fn role(&self, scope: &Scope, id: RoleId) -> Result<Role> {
        let st = self.state()?;
        if SystemRole::from_id(id).is_none() {
            st.require(scope, Target::Role(id), "role")?;
        }
        st.role(id).ok_or(CoreError::not_found("role"))
    }

    async fn list_roles(&self, scope: &Scope, page: Page) -> Result<Listing<Role>> {
        let st = self.state()?;
        let system: Vec<Role> = SystemRole::ALL.into_iter().map(SystemRole::role).collect();
        let custom = st
            .roles
            .values()
            .filter(|r| st.sees(scope, Target::Role(r.id)));
        Ok(listing(system.iter().chain(custom), page, |r| r.id.0))
    }

    async fn permission_grants(&self, scope: &Scope, id: RoleId) -> Result<Vec<PermissionGrant>> {
        let st = self.state()?;
        if let Some(system) = SystemRole::from_id(id) {
            return Ok(system.grants());
        }
        st.require(scope, Target::Role(id), "role")?;
        Ok(st.grants.get(&id).cloned().unwrap_or_default())
    }

    async fn delete_role(&self, scope: &Scope, id: RoleId) -> Result<()> {
        if SystemRole::from_id(id).is_some() {
            return Err(CoreError::invalid("role", "system roles cannot be deleted"));
        }
        let mut st = self.state()?;
        st.require(scope, Target::Role(id), "role")?;
        let used = st.users.values().any(|(u, _)| u.role_id == id)
            || st.assignments.values().any(|a| a.role_id == Some(id));
        if used {
            return Err(in_use("role", "users or assignments still hold it"));
        }
        st.invitations.retain(|_, i| i.role_id != id);
        st.roles.remove(&id);
        st.grants.remove(&id);
        Ok(())
    }

    async fn assign_establishment(
        &self,
        scope: &Scope,
        assignment: &UserEstablishment,
    ) -> Result<()> {
        let mut st = self.state()?;
        st.require(
            scope,
            Target::Establishment(assignment.establishment_id),
            "establishment",
        )?;
        st.require(scope, Target::User(assignment.user_id), "user")?;
        let org = st
            .establishments
            .get(&assignment.establishment_id)
            .map(|e| e.organization_id);
        let user_org = st
            .users
            .get(&assignment.user_id)
            .and_then(|(u, _)| u.organization_id);
        if org.is_none() || org != user_org {
            return Err(CoreError::not_found("user"));
        }
        if let Some(role_id) = assignment.role_id {
            let fits = st.roles.get(&role_id).is_some_and(|r| {
                r.organization_id == org
                    && r.establishment_id
                        .is_none_or(|e| e == assignment.establishment_id)
            });
            if !fits {
                return Err(CoreError::not_found("role"));
            }
        }
        st.assignments.insert(
            (assignment.user_id, assignment.establishment_id),
            assignment.clone(),
        );
        Ok(())
    }

    async fn assignments(&self, scope: &Scope, user: UserId) -> Result<Vec<UserEstablishment>> {
        let st = self.state()?;
        st.require(scope, Target::User(user), "user")?;
        Ok(st
            .assignments
            .values()
            .filter(|a| a.user_id == user)
            .filter(|a| st.sees(scope, Target::Establishment(a.establishment_id)))
            .cloned()
            .collect())
    }

    async fn insert_invitation(&self, scope: &Scope, invitation: &Invitation) -> Result<()> {
        let Some(token) = invitation.token_hash else {
            return Err(CoreError::invalid(
                "token",
                "an invitation needs its token's hash",
            ));
        };
        let mut st = self.state()?;
        let org = match invitation.target {
            InvitationTarget::PartnerCompany(p) => {
                st.require(scope, Target::PartnerCompany(p), "partner company")?;
                None
            }
            InvitationTarget::Organization(o) => {
                st.require(scope, Target::Organization(o), "organization")?;
                Some(o)
            }
        };
        st.check_role(invitation.role_id, org)?;
        fresh(&st.invitations, &invitation.id, "invitation")?;
        if st.invitation_by_token(token).is_some() {
            return Err(CoreError::AlreadyExists {
                entity: "invitation",
                detail: "a unique value is already in use".to_owned(),
            });
        }
        st.invitations.insert(invitation.id, invitation.clone());
        Ok(())
    }

    async fn invitation_by_token(&self, token: SecretHash) -> Result<Option<Invitation>> {
        Ok(self.state()?.invitation_by_token(token).map(|i| i.clone()))
    }

    async fn accept_invitation(
        &self,
        token: SecretHash,
        user: &User,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User> {
        let mut st = self.state()?;
        let invitation = st
            .invitation_by_token(token)
            .ok_or(CoreError::not_found("invitation"))?;
        invitation.check_open(now)?;
        invitation.check_fits(user)?;
        st.insert_user(user, Some(password_hash))?;
        if let Some(inv) = st.invitation_by_token(token) {
            inv.status = InvitationStatus::Accepted;
            inv.responded_at = Some(now);
        }
        st.users
            .get(&user.id)
            .map(|(u, _)| u.clone())
            .ok_or(CoreError::not_found("user"))
    }

    async fn decline_invitation(
        &self,
        token: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Invitation> {
        let mut st = self.state()?;
        let invitation = st
            .invitation_by_token(token)
            .ok_or(CoreError::not_found("invitation"))?;
        invitation.check_open(now)?;
        invitation.status = InvitationStatus::Declined;
        invitation.responded_at = Some(now);
        Ok(invitation.clone())
    }
}
