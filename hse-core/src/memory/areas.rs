//! Areas in memory: nesting within one establishment, without loops.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryTenancyStore;
use super::state::{fresh, in_use, listing};
use crate::error::{CoreError, Result};
use crate::id::{AreaId, EstablishmentId};
use crate::model::{Area, AreaPatch};
use crate::principal::Scope;
use crate::store::{AreaStore, Listing, Page, Target};

#[async_trait]
impl AreaStore for MemoryTenancyStore {
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
}
