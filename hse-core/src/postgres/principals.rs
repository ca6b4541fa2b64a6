//! Building a [`Principal`] from a user's role and assignments.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::roles::{actions, permissions_of, stored_hierarchy};
use super::tx::{DbScope, begin_in};
use crate::action::ActionName;
use crate::error::{CoreError, Result};
use crate::id::{EstablishmentId, UserId};
use crate::principal::Principal;

/// An active user's tenancy and role rank.
#[derive(Debug, FromRow)]
struct PrincipalRow {
    role_id: Uuid,
    hierarchy: i16,
    partner_company_id: Option<Uuid>,
    organization_id: Option<Uuid>,
}

/// The principal of an active user (system path); `NotFound` if the user
/// is absent or inactive, or its organization or partner company is
/// suspended (inactive). One read-only snapshot, so role, grants and
/// assignments agree with each other.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub(super) async fn principal(pool: &PgPool, id: UserId) -> Result<Principal> {
    let mut tx = begin_in(
        pool,
        DbScope::System,
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    )
    .await?;
    let row: PrincipalRow = sqlx::query_as(
        "SELECT u.role_id, r.hierarchy, \
         COALESCE(u.partner_company_id, o.partner_company_id) AS partner_company_id, \
         u.organization_id FROM users u JOIN roles r ON r.id = u.role_id \
         LEFT JOIN organizations o ON o.id = u.organization_id \
         LEFT JOIN partner_companies pc \
           ON pc.id = COALESCE(u.partner_company_id, o.partner_company_id) \
         WHERE u.id = $1 AND u.is_active \
           AND (o.id IS NULL OR o.is_active) AND (pc.id IS NULL OR pc.is_active)",
    )
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(CoreError::not_found("user"))?;
    let permissions = permissions_of(&mut *tx, row.role_id.into()).await?;
    let assigned: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT ue.establishment_id, p.action FROM user_establishments ue \
         LEFT JOIN permissions p ON p.role_id = ue.role_id WHERE ue.user_id = $1",
    )
    .bind(id.0)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Principal {
        user_id: id,
        role_id: row.role_id.into(),
        hierarchy: stored_hierarchy(row.hierarchy)?,
        partner_company_id: row.partner_company_id.map(Into::into),
        organization_id: row.organization_id.map(Into::into),
        permissions,
        establishments: establishments(assigned),
    })
}

/// Folds (establishment, granted action) pairs into the principal's map.
fn establishments(
    assigned: Vec<(Uuid, Option<String>)>,
) -> BTreeMap<EstablishmentId, BTreeSet<ActionName>> {
    let mut names: BTreeMap<EstablishmentId, Vec<String>> = BTreeMap::new();
    for (est, action) in assigned {
        names.entry(est.into()).or_default().extend(action);
    }
    names
        .into_iter()
        .map(|(est, names)| (est, actions(names)))
        .collect()
}
