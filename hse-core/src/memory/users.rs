//! Users in memory: sign-in records, principals and establishment
//! assignments.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryTenancyStore;
use super::state::listing;
use crate::error::{CoreError, Result};
use crate::id::UserId;
use crate::model::{User, UserEstablishment, UserPatch};
use crate::principal::{Principal, Scope};
use crate::store::{AssignmentStore, Credentials, Listing, Page, Target, UserStore};
use crate::value::Email;

#[async_trait]
impl UserStore for MemoryTenancyStore {
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
}

#[async_trait]
impl AssignmentStore for MemoryTenancyStore {
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
}
