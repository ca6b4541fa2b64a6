//! Roles and their permission grants.
//!
//! System roles are rows too (the foreign keys need them), but their
//! permissions come from the catalogue, never from `permissions`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::establishments::EstablishmentRow;
use super::scoped::{EstablishmentColumn, Lock, Placement, Record, Table, delete, fetch, list_in};
use super::tx::scoped_tx;
use super::violation::on_write;
use crate::action::ActionName;
use crate::error::{CoreError, Result};
use crate::id::RoleId;
use crate::model::Establishment;
use crate::principal::Scope;
use crate::role::{Hierarchy, PermissionGrant, Role, SystemRole};
use crate::store::{Listing, Page};

/// A stored role (its permissions are read separately).
#[derive(Debug, FromRow)]
pub(super) struct RoleRow {
    id: Uuid,
    name: String,
    description: String,
    hierarchy: i16,
    organization_id: Option<Uuid>,
    establishment_id: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl Record for RoleRow {
    type Model = Role;
    const TABLE: Table = Table {
        entity: "role",
        alias: "r",
        select: "SELECT r.id, r.name, r.description, r.hierarchy, r.organization_id, \
                 r.establishment_id, r.created_by, r.created_at FROM roles r \
                 LEFT JOIN organizations o ON o.id = r.organization_id",
        always_visible: Some("r.organization_id IS NULL"),
        placement: Placement {
            partner: &["o.partner_company_id"],
            organization: Some("r.organization_id"),
            establishment: EstablishmentColumn::Optional("r.establishment_id"),
        },
        delete: "DELETE FROM roles WHERE id = $1",
    };

    fn id(&self) -> Uuid {
        self.id
    }

    /// The role; a custom role's permissions are left empty for
    /// [`with_permissions`] to fill.
    fn into_model(self) -> Result<Role> {
        if let Some(system) = SystemRole::from_id(self.id.into()) {
            return Ok(system.role());
        }
        let hierarchy = stored_hierarchy(self.hierarchy)?;
        Ok(Role {
            id: self.id.into(),
            name: self.name,
            description: self.description,
            hierarchy,
            organization_id: self.organization_id.map(Into::into),
            establishment_id: self.establishment_id.map(Into::into),
            created_by: self.created_by.map(Into::into),
            permissions: BTreeSet::new(),
            created_at: self.created_at,
        })
    }
}

/// Parses a stored role rank.
pub(super) fn stored_hierarchy(value: i16) -> Result<Hierarchy> {
    u16::try_from(value)
        .map_err(|_| CoreError::Storage("stored role hierarchy is negative".into()))
        .and_then(Hierarchy::parse)
}

/// Parses stored action names, skipping (and logging) any the catalogue
/// no longer has: a stale grant denies rather than breaks sign-in.
pub(super) fn actions(names: impl IntoIterator<Item = String>) -> BTreeSet<ActionName> {
    names
        .into_iter()
        .filter_map(|name| match ActionName::parse(&name) {
            Ok(action) => Some(action),
            Err(_) => {
                tracing::warn!(action = %name, "stored permission is not in the catalogue");
                None
            }
        })
        .collect()
}

/// The stored grants of the custom roles among `ids`, by role.
async fn grants_by_role<'c>(
    exec: impl PgExecutor<'c>,
    ids: Vec<Uuid>,
) -> Result<BTreeMap<Uuid, BTreeSet<ActionName>>> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT role_id, action FROM permissions WHERE role_id = ANY($1)")
            .bind(ids)
            .fetch_all(exec)
            .await?;
    let mut by_role: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    for (role, action) in rows {
        by_role.entry(role).or_default().push(action);
    }
    Ok(by_role.into_iter().map(|(r, a)| (r, actions(a))).collect())
}

/// The permissions of one role: the catalogue's for a system role, the
/// stored grants for a custom one.
pub(super) async fn permissions_of<'c>(
    exec: impl PgExecutor<'c>,
    id: RoleId,
) -> Result<BTreeSet<ActionName>> {
    if let Some(system) = SystemRole::from_id(id) {
        return Ok(system.default_permissions());
    }
    Ok(grants_by_role(exec, vec![id.0])
        .await?
        .remove(&id.0)
        .unwrap_or_default())
}

/// Fills the permissions of the custom roles among `roles`.
async fn with_permissions(tx: &mut PgConnection, mut roles: Vec<Role>) -> Result<Vec<Role>> {
    let custom = roles.iter().filter(|r| !r.is_system()).map(|r| r.id.0);
    let mut grants = grants_by_role(tx, custom.collect()).await?;
    for role in roles.iter_mut().filter(|r| !r.is_system()) {
        role.permissions = grants.remove(&role.id.0).unwrap_or_default();
    }
    Ok(roles)
}

/// One role: system roles for everyone, custom roles in scope.
pub(super) async fn role(pool: &PgPool, scope: &Scope, id: RoleId) -> Result<Role> {
    let mut tx = scoped_tx(pool, scope).await?;
    let role = fetch::<RoleRow>(&mut *tx, scope, id.0, Lock::None)
        .await?
        .into_model()?;
    let mut roles = with_permissions(&mut tx, vec![role]).await?;
    tx.commit().await?;
    roles.pop().ok_or(CoreError::not_found("role"))
}

/// System roles and the custom roles in scope.
pub(super) async fn list_roles(pool: &PgPool, scope: &Scope, page: Page) -> Result<Listing<Role>> {
    let mut tx = scoped_tx(pool, scope).await?;
    let listing = list_in::<RoleRow>(&mut tx, scope, None, page).await?;
    let items = with_permissions(&mut tx, listing.items).await?;
    tx.commit().await?;
    Ok(Listing {
        items,
        next_cursor: listing.next_cursor,
    })
}

/// The grants behind a role's permissions.
pub(super) async fn grants(
    pool: &PgPool,
    scope: &Scope,
    id: RoleId,
) -> Result<Vec<PermissionGrant>> {
    if let Some(system) = SystemRole::from_id(id) {
        return Ok(system.grants());
    }
    let mut tx = scoped_tx(pool, scope).await?;
    fetch::<RoleRow>(&mut *tx, scope, id.0, Lock::None).await?;
    let rows: Vec<(String, Option<Uuid>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT action, granted_by, granted_at FROM permissions WHERE role_id = $1 ORDER BY action COLLATE \"C\"",
    )
    .bind(id.0)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|(action, by, at)| {
            let action = actions([action]).pop_first()?;
            Some(PermissionGrant {
                role_id: id,
                action,
                granted_by: by.map(Into::into),
                granted_at: at,
            })
        })
        .collect())
}

/// Stores a custom role of an organization in scope (narrowed, maybe, to
/// one of its establishments in scope) with its grants.
pub(super) async fn insert(pool: &PgPool, scope: &Scope, role: &Role) -> Result<()> {
    if role.is_system() || role.hierarchy < Hierarchy::FIRST_CUSTOM {
        return Err(CoreError::invalid(
            "hierarchy",
            "a custom role ranks 5 or more",
        ));
    }
    let org = role
        .organization_id
        .ok_or_else(|| CoreError::invalid("organization_id", "a custom role needs one"))?;
    let mut tx = scoped_tx(pool, scope).await?;
    fetch::<super::tenants::OrganizationRow>(&mut *tx, scope, org.0, Lock::None).await?;
    if let Some(est) = role.establishment_id {
        let est = fetch::<EstablishmentRow>(&mut *tx, scope, est.0, Lock::None)
            .await?
            .into_model()?;
        if est.organization_id != org {
            return Err(CoreError::not_found("establishment"));
        }
    }
    insert_row(&mut tx, role).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_row(tx: &mut PgConnection, role: &Role) -> Result<()> {
    let hierarchy = i16::try_from(role.hierarchy.get())
        .map_err(|_| CoreError::invalid("hierarchy", "must be at most 32767"))?;
    sqlx::query(
        "INSERT INTO roles (id, name, description, hierarchy, organization_id, establishment_id, \
         created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(role.id.0)
    .bind(&role.name)
    .bind(&role.description)
    .bind(hierarchy)
    .bind(role.organization_id.map(|o| o.0))
    .bind(role.establishment_id.map(|e| e.0))
    .bind(role.created_by.map(|u| u.0))
    .bind(role.created_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "role"))?;
    let names: Vec<&str> = role.permissions.iter().map(ActionName::as_str).collect();
    sqlx::query(
        "INSERT INTO permissions (role_id, action, granted_by, granted_at) \
         SELECT $1, action, $3, $4 FROM unnest($2::text[]) AS action",
    )
    .bind(role.id.0)
    .bind(names)
    .bind(role.created_by.map(|u| u.0))
    .bind(role.created_at)
    .execute(tx)
    .await
    .map_err(|e| on_write(e, "role"))?;
    Ok(())
}

/// Deletes a custom role in scope; `InUse` while users or assignments
/// hold it.
pub(super) async fn remove(pool: &PgPool, scope: &Scope, id: RoleId) -> Result<()> {
    if SystemRole::from_id(id).is_some() {
        return Err(CoreError::invalid("role", "system roles cannot be deleted"));
    }
    delete::<RoleRow>(pool, scope, id.0).await
}

/// Refuses, as missing, an establishment role that does not exist, is of
/// another organization, or is narrowed to another establishment.
pub(super) async fn check_establishment_role(
    tx: &mut PgConnection,
    role: RoleId,
    est: &Establishment,
) -> Result<()> {
    let placement: Option<(Option<Uuid>, Option<Uuid>)> =
        sqlx::query_as("SELECT organization_id, establishment_id FROM roles WHERE id = $1")
            .bind(role.0)
            .fetch_optional(tx)
            .await?;
    let fits = placement.is_some_and(|(org, narrowed)| {
        org == Some(est.organization_id.0) && narrowed.is_none_or(|e| e == est.id.0)
    });
    if fits {
        Ok(())
    } else {
        Err(CoreError::not_found("role"))
    }
}
