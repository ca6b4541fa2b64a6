//! Devices and their system paths (hello, connectivity).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::areas::AreaRow;
use super::scoped::{EstablishmentColumn, Lock, Placement, Record, Table, fetch, stored};
use super::tx::{scoped_tx, system_tx};
use super::violation::on_write;
use crate::error::{CoreError, Result};
use crate::id::DeviceId;
use crate::model::{Device, DevicePatch, DeviceStatus};
use crate::principal::Scope;
use crate::secret::SecretHash;
use crate::value::{MacAddress, Metadata};

/// A stored device (without its secret hash).
#[derive(Debug, FromRow)]
pub(super) struct DeviceRow {
    id: Uuid,
    establishment_id: Uuid,
    area_id: Uuid,
    device_type: String,
    manufacturer: String,
    model: String,
    serial_number: String,
    mac_address: Option<String>,
    protocol: String,
    status: String,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Record for DeviceRow {
    type Model = Device;
    const TABLE: Table = Table {
        entity: "device",
        alias: "d",
        select: "SELECT d.id, d.establishment_id, d.area_id, d.device_type, d.manufacturer, \
                 d.model, d.serial_number, d.mac_address, d.protocol, d.status, d.metadata, \
                 d.created_at, d.updated_at FROM devices d \
                 JOIN establishments e ON e.id = d.establishment_id \
                 JOIN organizations o ON o.id = e.organization_id",
        always_visible: None,
        placement: Placement {
            partner: &["o.partner_company_id"],
            organization: Some("e.organization_id"),
            establishment: EstablishmentColumn::Required("d.establishment_id"),
        },
        delete: "DELETE FROM devices WHERE id = $1",
    };

    fn id(&self) -> Uuid {
        self.id
    }

    fn into_model(self) -> Result<Device> {
        Ok(Device {
            id: self.id.into(),
            establishment_id: self.establishment_id.into(),
            area_id: self.area_id.into(),
            device_type: self.device_type,
            manufacturer: self.manufacturer,
            model: self.model,
            serial_number: self.serial_number,
            mac_address: self
                .mac_address
                .map(|m| stored(MacAddress::parse(&m)))
                .transpose()?,
            protocol: self.protocol,
            status: stored(DeviceStatus::parse(&self.status))?,
            metadata: stored(Metadata::parse(self.metadata))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Refuses an area that is not in scope or not in the device's
/// establishment.
async fn check_area(tx: &mut PgConnection, scope: &Scope, device: &Device) -> Result<()> {
    let area = fetch::<AreaRow>(tx, scope, device.area_id.0, Lock::None)
        .await?
        .into_model()?;
    if area.establishment_id != device.establishment_id {
        // An area of another establishment is, for this device, no area.
        return Err(CoreError::not_found("area"));
    }
    Ok(())
}

/// Stores a new device in an area in scope, with its secret's hash.
pub(super) async fn insert(
    pool: &PgPool,
    scope: &Scope,
    device: &Device,
    secret: SecretHash,
) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    check_area(&mut tx, scope, device).await?;
    sqlx::query(
        "INSERT INTO devices (id, establishment_id, area_id, device_type, manufacturer, model, \
         serial_number, mac_address, protocol, status, metadata, secret_hash, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(device.id.0)
    .bind(device.establishment_id.0)
    .bind(device.area_id.0)
    .bind(&device.device_type)
    .bind(&device.manufacturer)
    .bind(&device.model)
    .bind(&device.serial_number)
    .bind(device.mac_address.as_ref().map(MacAddress::as_str))
    .bind(&device.protocol)
    .bind(device.status.as_str())
    .bind(Json(&device.metadata))
    .bind(&secret.0[..])
    .bind(device.created_at)
    .bind(device.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "device"))?;
    tx.commit().await?;
    Ok(())
}

/// Applies `patch` to a device in scope; a new area must be in its
/// establishment.
pub(super) async fn update(
    pool: &PgPool,
    scope: &Scope,
    id: DeviceId,
    patch: DevicePatch,
    now: DateTime<Utc>,
) -> Result<Device> {
    let mut tx = scoped_tx(pool, scope).await?;
    let mut device = fetch::<DeviceRow>(&mut *tx, scope, id.0, Lock::Update)
        .await?
        .into_model()?;
    let old_area = device.area_id;
    patch.apply(&mut device, now)?;
    if device.area_id != old_area {
        check_area(&mut tx, scope, &device).await?;
    }
    sqlx::query(
        "UPDATE devices SET area_id = $2, model = $3, serial_number = $4, mac_address = $5, \
         status = $6, metadata = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(device.id.0)
    .bind(device.area_id.0)
    .bind(&device.model)
    .bind(&device.serial_number)
    .bind(device.mac_address.as_ref().map(MacAddress::as_str))
    .bind(device.status.as_str())
    .bind(Json(&device.metadata))
    .bind(device.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| on_write(e, "device"))?;
    tx.commit().await?;
    Ok(device)
}

/// The stored hash of a device's secret (system path).
pub(super) async fn secret_hash(pool: &PgPool, id: DeviceId) -> Result<Option<SecretHash>> {
    let mut tx = system_tx(pool).await?;
    let hash: Option<Vec<u8>> = sqlx::query_scalar("SELECT secret_hash FROM devices WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    hash.map(|h| SecretHash::from_slice(&h)).transpose()
}

/// Records a device's connectivity (system path).
pub(super) async fn set_status(
    pool: &PgPool,
    id: DeviceId,
    status: DeviceStatus,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut tx = system_tx(pool).await?;
    let done = sqlx::query("UPDATE devices SET status = $2, updated_at = $3 WHERE id = $1")
        .bind(id.0)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if done.rows_affected() == 0 {
        return Err(CoreError::not_found("device"));
    }
    Ok(())
}
