//! The port of custom roles.

use async_trait::async_trait;

use super::{Listing, Page};
use crate::error::Result;
use crate::id::RoleId;
use crate::principal::Scope;
use crate::role::{PermissionGrant, Role};

/// Custom roles and their permission grants (system roles are built in). Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// Stores a custom role and its permission grants (granted by
    /// `role.created_by` at `role.created_at`). A hierarchy below 5 (or
    /// above 32767), or a system role's id, is [`CoreError::Invalid`](crate::CoreError::Invalid)
    /// naming `hierarchy`.
    async fn insert_role(&self, scope: &Scope, role: &Role) -> Result<()>;
    /// One role: system roles are visible to everyone, custom roles in scope.
    async fn role(&self, scope: &Scope, id: RoleId) -> Result<Role>;
    /// System roles and the custom roles in scope.
    async fn list_roles(&self, scope: &Scope, page: Page) -> Result<Listing<Role>>;
    /// The grants behind a role's permissions.
    async fn permission_grants(&self, scope: &Scope, id: RoleId) -> Result<Vec<PermissionGrant>>;
    /// Deletes a custom role with the invitations that offer it;
    /// [`CoreError::InUse`](crate::CoreError::InUse) while users or assignments hold it;
    /// [`CoreError::Invalid`](crate::CoreError::Invalid) for a system role.
    async fn delete_role(&self, scope: &Scope, id: RoleId) -> Result<()>;
}
