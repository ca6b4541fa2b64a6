//! The port of devices.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Listing, Page};
use crate::error::Result;
use crate::id::{AreaId, DeviceId};
use crate::model::{Device, DevicePatch, DeviceStatus};
use crate::principal::Scope;
use crate::secret::SecretHash;

/// Devices, with the hash of their secret and their connectivity. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Stores a new device with the hash of its secret; its area must be
    /// in `device.establishment_id`.
    async fn insert_device(&self, scope: &Scope, device: &Device, secret: SecretHash)
    -> Result<()>;
    /// One device in scope.
    async fn device(&self, scope: &Scope, id: DeviceId) -> Result<Device>;
    /// Devices in scope, optionally of one area.
    async fn list_devices(
        &self,
        scope: &Scope,
        area: Option<AreaId>,
        page: Page,
    ) -> Result<Listing<Device>>;
    /// Applies `patch` atomically; a new area must be in the same establishment.
    async fn update_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        patch: DevicePatch,
        now: DateTime<Utc>,
    ) -> Result<Device>;
    /// Deletes it.
    async fn delete_device(&self, scope: &Scope, id: DeviceId) -> Result<()>;
    /// The stored hash of a device's secret. *System path* (device hello).
    async fn device_secret_hash(&self, id: DeviceId) -> Result<Option<SecretHash>>;
    /// Records a device's connectivity. *System path* (ingest).
    async fn set_device_status(
        &self,
        id: DeviceId,
        status: DeviceStatus,
        now: DateTime<Utc>,
    ) -> Result<()>;
}
