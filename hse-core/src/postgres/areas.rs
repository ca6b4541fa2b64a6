//! Areas: a tree per establishment, kept acyclic under concurrency.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::establishments::EstablishmentRow;
use super::scoped::{EstablishmentColumn, Lock, Placement, Record, Table, fetch, stored};
use super::tx::scoped_tx;
use super::violation::on_write;
use crate::error::{CoreError, Result};
use crate::id::{AreaId, EstablishmentId};
use crate::model::{Area, AreaPatch};
use crate::principal::Scope;
use crate::value::Metadata;

/// A stored area.
#[derive(Debug, FromRow)]
pub(super) struct AreaRow {
    id: Uuid,
    establishment_id: Uuid,
    parent_area_id: Option<Uuid>,
    name: String,
    #[sqlx(rename = "type")]
    kind: String,
    floor: Option<i32>,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Record for AreaRow {
    type Model = Area;
    const TABLE: Table = Table {
        entity: "area",
        alias: "a",
        select: "SELECT a.id, a.establishment_id, a.parent_area_id, a.name, a.type, a.floor, \
                 a.metadata, a.created_at, a.updated_at FROM areas a \
                 JOIN establishments e ON e.id = a.establishment_id \
                 JOIN organizations o ON o.id = e.organization_id",
        always_visible: None,
        placement: Placement {
            partner: &["o.partner_company_id"],
            organization: Some("e.organization_id"),
            establishment: EstablishmentColumn::Required("a.establishment_id"),
        },
        delete: "DELETE FROM areas WHERE id = $1",
    };

    fn id(&self) -> Uuid {
        self.id
    }

    fn into_model(self) -> Result<Area> {
        Ok(Area {
            id: self.id.into(),
            establishment_id: self.establishment_id.into(),
            parent_area_id: self.parent_area_id.map(Into::into),
            name: self.name,
            kind: self.kind,
            floor: self.floor,
            metadata: stored(Metadata::parse(self.metadata))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A parent that is not an area of the same establishment looks missing.
fn no_parent() -> CoreError {
    CoreError::not_found("parent area")
}

/// Stores a new area of an establishment in scope; its parent must be an
/// area of the same establishment.
pub(super) async fn insert(pool: &PgPool, scope: &Scope, area: &Area) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    fetch::<EstablishmentRow>(&mut *tx, scope, area.establishment_id.0, Lock::None).await?;
    if let Some(parent) = area.parent_area_id {
        let path = ancestry(&mut tx, area.establishment_id, parent).await?;
        if path.is_empty() {
            return Err(no_parent());
        }
    }
    sqlx::query(
        "INSERT INTO areas (id, establishment_id, parent_area_id, name, type, floor, metadata, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(area.id.0)
    .bind(area.establishment_id.0)
    .bind(area.parent_area_id.map(|p| p.0))
    .bind(&area.name)
    .bind(&area.kind)
    .bind(area.floor)
    .bind(Json(&area.metadata))
    .bind(area.created_at)
    .bind(area.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "area"))?;
    tx.commit().await?;
    Ok(())
}

/// Applies `patch` to an area in scope, refusing a parent outside the
/// establishment or inside the area itself.
#[tracing::instrument(skip_all, fields(area.id = %id))]
pub(super) async fn update(
    pool: &PgPool,
    scope: &Scope,
    id: AreaId,
    patch: AreaPatch,
    now: DateTime<Utc>,
) -> Result<Area> {
    let mut tx = scoped_tx(pool, scope).await?;
    let mut area = fetch::<AreaRow>(&mut *tx, scope, id.0, Lock::Update)
        .await?
        .into_model()?;
    let old_parent = area.parent_area_id;
    patch.apply(&mut area, now)?;
    if let Some(parent) = area.parent_area_id.filter(|p| Some(*p) != old_parent) {
        check_new_parent(&mut tx, &area, parent).await?;
    }
    write(&mut tx, &area).await?;
    tx.commit().await?;
    Ok(area)
}

/// Refuses `parent` unless it is in the area's establishment and not
/// below the area. Serialises re-parentings within the establishment
/// first, so two concurrent moves cannot each pass the check and together
/// close a loop.
async fn check_new_parent(tx: &mut PgConnection, area: &Area, parent: AreaId) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hse_core.area_tree'), hashtext($1::text))")
        .bind(area.establishment_id.0)
        .execute(&mut *tx)
        .await?;
    let path = ancestry(tx, area.establishment_id, parent).await?;
    if path.is_empty() {
        return Err(no_parent());
    }
    if path.contains(&area.id.0) {
        return Err(CoreError::invalid(
            "parent_area_id",
            "the new parent is inside this area",
        ));
    }
    Ok(())
}

/// `area` and its ancestors, if it is in `establishment` (else empty).
async fn ancestry(
    tx: &mut PgConnection,
    establishment: EstablishmentId,
    area: AreaId,
) -> Result<Vec<Uuid>> {
    let ids = sqlx::query_scalar(
        "WITH RECURSIVE up (id, parent) AS ( \
             SELECT id, parent_area_id FROM areas WHERE id = $1 AND establishment_id = $2 \
           UNION \
             SELECT a.id, a.parent_area_id FROM areas a JOIN up ON a.id = up.parent \
         ) SELECT id FROM up",
    )
    .bind(area.0)
    .bind(establishment.0)
    .fetch_all(tx)
    .await?;
    Ok(ids)
}

async fn write(tx: &mut PgConnection, area: &Area) -> Result<()> {
    sqlx::query(
        "UPDATE areas SET parent_area_id = $2, name = $3, type = $4, floor = $5, \
         metadata = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(area.id.0)
    .bind(area.parent_area_id.map(|p| p.0))
    .bind(&area.name)
    .bind(&area.kind)
    .bind(area.floor)
    .bind(Json(&area.metadata))
    .bind(area.updated_at)
    .execute(tx)
    .await
    .map_err(|e| on_write(e, "area"))?;
    Ok(())
}
