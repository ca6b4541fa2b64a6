//! Establishments.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::scoped::{EstablishmentColumn, Lock, Placement, Record, Table, fetch, stored};
use super::tenants::OrganizationRow;
use super::tx::{DbScope, scoped_tx, set_scope};
use super::violation::on_write;
use crate::error::Result;
use crate::id::{EstablishmentId, UserId};
use crate::model::{Establishment, EstablishmentPatch};
use crate::principal::Scope;
use crate::value::{GeoPoint, Metadata, Timezone};

/// A stored establishment.
#[derive(Debug, FromRow)]
pub(super) struct EstablishmentRow {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    address: String,
    location_lat: Option<f64>,
    location_lon: Option<f64>,
    timezone: String,
    is_active: bool,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Record for EstablishmentRow {
    type Model = Establishment;
    const TABLE: Table = Table {
        entity: "establishment",
        alias: "e",
        select: "SELECT e.id, e.organization_id, e.name, e.address, e.location_lat, \
                 e.location_lon, e.timezone, e.is_active, e.metadata, e.created_at, \
                 e.updated_at FROM establishments e \
                 JOIN organizations o ON o.id = e.organization_id",
        always_visible: None,
        placement: Placement {
            partner: &["o.partner_company_id"],
            organization: Some("e.organization_id"),
            establishment: EstablishmentColumn::Required("e.id"),
        },
        delete: "DELETE FROM establishments WHERE id = $1",
    };

    fn id(&self) -> Uuid {
        self.id
    }

    fn into_model(self) -> Result<Establishment> {
        let location = match (self.location_lat, self.location_lon) {
            (Some(lat), Some(lon)) => Some(stored(GeoPoint::new(lat, lon))?),
            _ => None,
        };
        Ok(Establishment {
            id: self.id.into(),
            organization_id: self.organization_id.into(),
            name: self.name,
            address: self.address,
            location,
            timezone: stored(Timezone::parse(&self.timezone))?,
            is_active: self.is_active,
            metadata: stored(Metadata::parse(self.metadata))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Stores a new establishment of an organization in scope and assigns it
/// to `assign_to`, in one transaction.
pub(super) async fn insert(
    pool: &PgPool,
    scope: &Scope,
    est: &Establishment,
    assign_to: Option<UserId>,
) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    fetch::<OrganizationRow>(&mut *tx, scope, est.organization_id.0, Lock::None).await?;
    sqlx::query(
        "INSERT INTO establishments (id, organization_id, name, address, location_lat, \
         location_lon, timezone, is_active, metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(est.id.0)
    .bind(est.organization_id.0)
    .bind(&est.name)
    .bind(&est.address)
    .bind(est.location.map(|p| p.lat))
    .bind(est.location.map(|p| p.lon))
    .bind(est.timezone.to_string())
    .bind(est.is_active)
    .bind(Json(&est.metadata))
    .bind(est.created_at)
    .bind(est.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "establishment"))?;
    if let Some(user) = assign_to {
        widen(&mut tx, scope, est).await?;
        assign_creator(&mut tx, est, user).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Adds a new establishment to an organization scope for the rest of the
/// transaction: its creator is assigned to it there, and the policies of
/// `user_establishments` must see it.
async fn widen(tx: &mut PgConnection, scope: &Scope, est: &Establishment) -> Result<()> {
    if let Scope::Organization {
        organization_id,
        establishments,
    } = scope
    {
        let mut establishments = establishments.clone();
        establishments.insert(est.id);
        let wider = Scope::Organization {
            organization_id: *organization_id,
            establishments,
        };
        set_scope(tx, DbScope::Tenant(&wider)).await?;
    }
    Ok(())
}

/// Assigns a new establishment to its creator (who must be of its
/// organization: the composite foreign key says so).
async fn assign_creator(tx: &mut PgConnection, est: &Establishment, user: UserId) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_establishments (user_id, establishment_id, organization_id, role_id, \
         assigned_at, assigned_by) VALUES ($1, $2, $3, NULL, $4, $1)",
    )
    .bind(user.0)
    .bind(est.id.0)
    .bind(est.organization_id.0)
    .bind(est.created_at)
    .execute(tx)
    .await
    .map_err(|e| on_write(e, "establishment"))?;
    Ok(())
}

/// Applies `patch` to an establishment in scope.
pub(super) async fn update(
    pool: &PgPool,
    scope: &Scope,
    id: EstablishmentId,
    patch: EstablishmentPatch,
    now: DateTime<Utc>,
) -> Result<Establishment> {
    let mut tx = scoped_tx(pool, scope).await?;
    let row = fetch::<EstablishmentRow>(&mut *tx, scope, id.0, Lock::Update).await?;
    let mut est = row.into_model()?;
    patch.apply(&mut est, now)?;
    sqlx::query(
        "UPDATE establishments SET name = $2, address = $3, location_lat = $4, \
         location_lon = $5, timezone = $6, is_active = $7, metadata = $8, updated_at = $9 \
         WHERE id = $1",
    )
    .bind(est.id.0)
    .bind(&est.name)
    .bind(&est.address)
    .bind(est.location.map(|p| p.lat))
    .bind(est.location.map(|p| p.lon))
    .bind(est.timezone.to_string())
    .bind(est.is_active)
    .bind(Json(&est.metadata))
    .bind(est.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "establishment"))?;
    tx.commit().await?;
    Ok(est)
}
