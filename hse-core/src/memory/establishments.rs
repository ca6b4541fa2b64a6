//! Establishments in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryTenancyStore;
use super::state::{fresh, in_use, listing};
use crate::error::{CoreError, Result};
use crate::id::{EstablishmentId, UserId};
use crate::model::{Establishment, EstablishmentPatch, UserEstablishment};
use crate::principal::Scope;
use crate::store::{EstablishmentStore, Listing, Page, Target};

#[async_trait]
impl EstablishmentStore for MemoryTenancyStore {
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
}
