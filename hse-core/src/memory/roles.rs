//! Custom roles in memory, with their grants.

use async_trait::async_trait;

use super::MemoryTenancyStore;
use super::state::{check_custom_hierarchy, fresh, in_use, listing};
use crate::error::{CoreError, Result};
use crate::id::RoleId;
use crate::principal::Scope;
use crate::role::{PermissionGrant, Role, SystemRole};
use crate::store::{Listing, Page, RoleStore, Target};

#[async_trait]
impl RoleStore for MemoryTenancyStore {
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
}
