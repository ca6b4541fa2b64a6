//! Partner companies and organizations.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::scoped::{EstablishmentColumn, Lock, Placement, Record, Table, fetch, stored};
use super::tx::scoped_tx;
use super::violation::on_write;
use crate::error::{CoreError, Result};
use crate::id::PartnerCompanyId;
use crate::model::{Organization, OrganizationPatch, PartnerCompany, PartnerCompanyPatch};
use crate::principal::Scope;
use crate::value::Email;

/// A stored partner company.
#[derive(Debug, FromRow)]
pub(super) struct PartnerCompanyRow {
    id: Uuid,
    name: String,
    contact_email: Option<String>,
    contact_phone: String,
    address: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Record for PartnerCompanyRow {
    type Model = PartnerCompany;
    const TABLE: Table = Table {
        entity: "partner company",
        alias: "pc",
        select: "SELECT pc.id, pc.name, pc.contact_email, pc.contact_phone, pc.address, \
                 pc.is_active, pc.created_at, pc.updated_at FROM partner_companies pc",
        always_visible: None,
        placement: Placement {
            partner: &["pc.id"],
            organization: None,
            establishment: EstablishmentColumn::None,
        },
        delete: "DELETE FROM partner_companies WHERE id = $1",
    };

    fn id(&self) -> Uuid {
        self.id
    }

    fn into_model(self) -> Result<PartnerCompany> {
        Ok(PartnerCompany {
            id: self.id.into(),
            name: self.name,
            contact_email: stored_email(self.contact_email)?,
            contact_phone: self.contact_phone,
            address: self.address,
            is_active: self.is_active,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A stored organization.
#[derive(Debug, FromRow)]
pub(super) struct OrganizationRow {
    id: Uuid,
    partner_company_id: Option<Uuid>,
    name: String,
    industry: String,
    contact_email: Option<String>,
    contact_phone: String,
    address: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Record for OrganizationRow {
    type Model = Organization;
    const TABLE: Table = Table {
        entity: "organization",
        alias: "o",
        select: "SELECT o.id, o.partner_company_id, o.name, o.industry, o.contact_email, \
                 o.contact_phone, o.address, o.is_active, o.created_at, o.updated_at \
                 FROM organizations o",
        always_visible: None,
        placement: Placement {
            partner: &["o.partner_company_id"],
            organization: Some("o.id"),
            establishment: EstablishmentColumn::None,
        },
        delete: "DELETE FROM organizations WHERE id = $1",
    };

    fn id(&self) -> Uuid {
        self.id
    }

    fn into_model(self) -> Result<Organization> {
        Ok(Organization {
            id: self.id.into(),
            partner_company_id: self.partner_company_id.map(Into::into),
            name: self.name,
            industry: self.industry,
            contact_email: stored_email(self.contact_email)?,
            contact_phone: self.contact_phone,
            address: self.address,
            is_active: self.is_active,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Parses a stored, optional email.
pub(super) fn stored_email(value: Option<String>) -> Result<Option<Email>> {
    value.map(|v| stored(Email::parse(&v))).transpose()
}

/// Refuses a platform-level write outside the platform scope, as if
/// `parent` (what a lower scope would have needed) were missing.
pub(super) fn require_platform(scope: &Scope, parent: &'static str) -> Result<()> {
    match scope {
        Scope::Platform => Ok(()),
        _ => Err(CoreError::not_found(parent)),
    }
}

/// Stores a new partner company (platform scope only).
pub(super) async fn insert_partner_company(
    pool: &PgPool,
    scope: &Scope,
    company: &PartnerCompany,
) -> Result<()> {
    require_platform(scope, "partner company")?;
    let mut tx = scoped_tx(pool, scope).await?;
    sqlx::query(
        "INSERT INTO partner_companies (id, name, contact_email, contact_phone, address, \
         is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(company.id.0)
    .bind(&company.name)
    .bind(company.contact_email.as_ref().map(Email::as_str))
    .bind(&company.contact_phone)
    .bind(&company.address)
    .bind(company.is_active)
    .bind(company.created_at)
    .bind(company.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "partner company"))?;
    tx.commit().await?;
    Ok(())
}

/// Applies `patch` to a partner company in scope.
pub(super) async fn update_partner_company(
    pool: &PgPool,
    scope: &Scope,
    id: PartnerCompanyId,
    patch: PartnerCompanyPatch,
    now: DateTime<Utc>,
) -> Result<PartnerCompany> {
    let mut tx = scoped_tx(pool, scope).await?;
    let row = fetch::<PartnerCompanyRow>(&mut *tx, scope, id.0, Lock::Update).await?;
    let mut company = row.into_model()?;
    patch.apply(&mut company, now)?;
    sqlx::query(
        "UPDATE partner_companies SET name = $2, contact_email = $3, contact_phone = $4, \
         address = $5, is_active = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(company.id.0)
    .bind(&company.name)
    .bind(company.contact_email.as_ref().map(Email::as_str))
    .bind(&company.contact_phone)
    .bind(&company.address)
    .bind(company.is_active)
    .bind(company.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "partner company"))?;
    tx.commit().await?;
    Ok(company)
}

/// Stores a new organization whose partner company is in scope (or, for
/// a platform-direct one, in the platform scope).
pub(super) async fn insert_organization(
    pool: &PgPool,
    scope: &Scope,
    org: &Organization,
) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    match org.partner_company_id {
        Some(partner) => {
            fetch::<PartnerCompanyRow>(&mut *tx, scope, partner.0, Lock::None).await?;
        }
        None => require_platform(scope, "partner company")?,
    }
    sqlx::query(
        "INSERT INTO organizations (id, partner_company_id, name, industry, contact_email, \
         contact_phone, address, is_active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(org.id.0)
    .bind(org.partner_company_id.map(|p| p.0))
    .bind(&org.name)
    .bind(&org.industry)
    .bind(org.contact_email.as_ref().map(Email::as_str))
    .bind(&org.contact_phone)
    .bind(&org.address)
    .bind(org.is_active)
    .bind(org.created_at)
    .bind(org.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "organization"))?;
    tx.commit().await?;
    Ok(())
}

/// Applies `patch` to an organization in scope.
pub(super) async fn update_organization(
    pool: &PgPool,
    scope: &Scope,
    id: crate::id::OrganizationId,
    patch: OrganizationPatch,
    now: DateTime<Utc>,
) -> Result<Organization> {
    let mut tx = scoped_tx(pool, scope).await?;
    let row = fetch::<OrganizationRow>(&mut *tx, scope, id.0, Lock::Update).await?;
    let mut org = row.into_model()?;
    patch.apply(&mut org, now)?;
    sqlx::query(
        "UPDATE organizations SET name = $2, industry = $3, contact_email = $4, \
         contact_phone = $5, address = $6, is_active = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(org.id.0)
    .bind(&org.name)
    .bind(&org.industry)
    .bind(org.contact_email.as_ref().map(Email::as_str))
    .bind(&org.contact_phone)
    .bind(&org.address)
    .bind(org.is_active)
    .bind(org.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "organization"))?;
    tx.commit().await?;
    Ok(org)
}
