//! The port of establishments.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Listing, Page};
use crate::error::Result;
use crate::id::{EstablishmentId, UserId};
use crate::model::{Establishment, EstablishmentPatch};
use crate::principal::Scope;

/// Establishments. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait EstablishmentStore: Send + Sync {
    /// Stores a new establishment in an organization in scope, and assigns
    /// it to `assign_to` (its creator) in the same transaction.
    async fn insert_establishment(
        &self,
        scope: &Scope,
        est: &Establishment,
        assign_to: Option<UserId>,
    ) -> Result<()>;
    /// One establishment in scope.
    async fn establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<Establishment>;
    /// Establishments in scope.
    async fn list_establishments(
        &self,
        scope: &Scope,
        page: Page,
    ) -> Result<Listing<Establishment>>;
    /// Applies `patch` atomically.
    async fn update_establishment(
        &self,
        scope: &Scope,
        id: EstablishmentId,
        patch: EstablishmentPatch,
        now: DateTime<Utc>,
    ) -> Result<Establishment>;
    /// Deletes it; [`CoreError::InUse`](crate::CoreError::InUse) while areas refer to it.
    async fn delete_establishment(&self, scope: &Scope, id: EstablishmentId) -> Result<()>;
}
