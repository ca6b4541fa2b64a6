//! The port of areas.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Listing, Page};
use crate::error::Result;
use crate::id::{AreaId, EstablishmentId};
use crate::model::{Area, AreaPatch};
use crate::principal::Scope;

/// Areas. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait AreaStore: Send + Sync {
    /// Stores a new area; its parent, if any, must be in the same establishment.
    async fn insert_area(&self, scope: &Scope, area: &Area) -> Result<()>;
    /// One area in scope.
    async fn area(&self, scope: &Scope, id: AreaId) -> Result<Area>;
    /// Areas in scope, optionally of one establishment.
    async fn list_areas(
        &self,
        scope: &Scope,
        establishment: Option<EstablishmentId>,
        page: Page,
    ) -> Result<Listing<Area>>;
    /// Applies `patch` atomically; a new parent must be in the same
    /// establishment and not inside the area ([`CoreError::Invalid`](crate::CoreError::Invalid) on
    /// `parent_area_id`).
    async fn update_area(
        &self,
        scope: &Scope,
        id: AreaId,
        patch: AreaPatch,
        now: DateTime<Utc>,
    ) -> Result<Area>;
    /// Deletes it; [`CoreError::InUse`](crate::CoreError::InUse) while sub-areas or devices refer to it.
    async fn delete_area(&self, scope: &Scope, id: AreaId) -> Result<()>;
}
