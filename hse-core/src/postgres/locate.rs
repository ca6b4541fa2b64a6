//! Where a thing lives in the tenant tree (system path).

use sqlx::PgPool;
use uuid::Uuid;

use super::tx::system_tx;
use crate::error::Result;
use crate::principal::Resource;
use crate::role::SystemRole;
use crate::store::Target;

/// The query giving `(partner, organization, establishment)` of a target,
/// and the id to bind.
fn query(target: Target) -> (&'static str, Uuid) {
    match target {
        Target::PartnerCompany(id) => (
            "SELECT id, NULL::uuid, NULL::uuid FROM partner_companies WHERE id = $1",
            id.0,
        ),
        Target::Organization(id) => (
            "SELECT partner_company_id, id, NULL::uuid FROM organizations WHERE id = $1",
            id.0,
        ),
        Target::Establishment(id) => (
            "SELECT o.partner_company_id, e.organization_id, e.id FROM establishments e \
             JOIN organizations o ON o.id = e.organization_id WHERE e.id = $1",
            id.0,
        ),
        Target::Area(id) => (
            "SELECT o.partner_company_id, e.organization_id, e.id FROM areas a \
             JOIN establishments e ON e.id = a.establishment_id \
             JOIN organizations o ON o.id = e.organization_id WHERE a.id = $1",
            id.0,
        ),
        Target::Device(id) => (
            "SELECT o.partner_company_id, e.organization_id, e.id FROM devices d \
             JOIN establishments e ON e.id = d.establishment_id \
             JOIN organizations o ON o.id = e.organization_id WHERE d.id = $1",
            id.0,
        ),
        Target::User(id) => (
            "SELECT COALESCE(u.partner_company_id, o.partner_company_id), u.organization_id, \
             NULL::uuid FROM users u LEFT JOIN organizations o ON o.id = u.organization_id \
             WHERE u.id = $1",
            id.0,
        ),
        Target::Role(id) => (
            "SELECT o.partner_company_id, r.organization_id, r.establishment_id FROM roles r \
             LEFT JOIN organizations o ON o.id = r.organization_id WHERE r.id = $1",
            id.0,
        ),
    }
}

/// Where `target` lives, or `None` if it does not exist.
pub(super) async fn locate(pool: &PgPool, target: Target) -> Result<Option<Resource>> {
    if let Target::Role(id) = target
        && SystemRole::from_id(id).is_some()
    {
        return Ok(Some(Resource::platform()));
    }
    let (sql, id) = query(target);
    let mut tx = system_tx(pool).await?;
    let row: Option<(Option<Uuid>, Option<Uuid>, Option<Uuid>)> = sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.map(|(partner, org, est)| Resource {
        partner_company_id: partner.map(Into::into),
        organization_id: org.map(Into::into),
        establishment_id: est.map(Into::into),
    }))
}
