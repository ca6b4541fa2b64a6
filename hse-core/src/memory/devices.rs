//! Devices in memory, with their secret's hash and connectivity.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryTenancyStore;
use super::state::{fresh, listing};
use crate::error::{CoreError, Result};
use crate::id::{AreaId, DeviceId};
use crate::model::{Device, DevicePatch, DeviceStatus};
use crate::principal::Scope;
use crate::secret::SecretHash;
use crate::store::{DeviceStore, Listing, Page, Target};

#[async_trait]
impl DeviceStore for MemoryTenancyStore {
    async fn insert_device(
        &self,
        scope: &Scope,
        device: &Device,
        secret: SecretHash,
    ) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::Area(device.area_id), "area")?;
        let same = st
            .areas
            .get(&device.area_id)
            .is_some_and(|a| a.establishment_id == device.establishment_id);
        if !same {
            return Err(CoreError::not_found("area"));
        }
        fresh(&st.devices, &device.id, "device")?;
        st.devices.insert(device.id, (device.clone(), secret));
        Ok(())
    }

    async fn device(&self, scope: &Scope, id: DeviceId) -> Result<Device> {
        let st = self.state()?;
        st.require(scope, Target::Device(id), "device")?;
        st.devices
            .get(&id)
            .map(|(d, _)| d.clone())
            .ok_or(CoreError::not_found("device"))
    }

    async fn list_devices(
        &self,
        scope: &Scope,
        area: Option<AreaId>,
        page: Page,
    ) -> Result<Listing<Device>> {
        let st = self.state()?;
        let visible = st
            .devices
            .values()
            .map(|(d, _)| d)
            .filter(|d| area.is_none_or(|a| d.area_id == a))
            .filter(|d| st.sees(scope, Target::Device(d.id)));
        Ok(listing(visible, page, |d| d.id.0))
    }

    async fn update_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        patch: DevicePatch,
        now: DateTime<Utc>,
    ) -> Result<Device> {
        let mut st = self.state()?;
        st.require(scope, Target::Device(id), "device")?;
        let (mut device, secret) = st
            .devices
            .get(&id)
            .cloned()
            .ok_or(CoreError::not_found("device"))?;
        patch.apply(&mut device, now)?;
        let same = st
            .areas
            .get(&device.area_id)
            .is_some_and(|a| a.establishment_id == device.establishment_id);
        if !same {
            return Err(CoreError::not_found("area"));
        }
        st.devices.insert(id, (device.clone(), secret));
        Ok(device)
    }

    async fn delete_device(&self, scope: &Scope, id: DeviceId) -> Result<()> {
        let mut st = self.state()?;
        st.require(scope, Target::Device(id), "device")?;
        st.devices.remove(&id);
        Ok(())
    }

    async fn device_secret_hash(&self, id: DeviceId) -> Result<Option<SecretHash>> {
        Ok(self.state()?.devices.get(&id).map(|(_, s)| *s))
    }

    async fn set_device_status(
        &self,
        id: DeviceId,
        status: DeviceStatus,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut st = self.state()?;
        let (device, _) = st
            .devices
            .get_mut(&id)
            .ok_or(CoreError::not_found("device"))?;
        device.status = status;
        device.updated_at = now;
        Ok(())
    }
}
