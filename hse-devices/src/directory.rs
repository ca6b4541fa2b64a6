//! Who may connect: the [`DeviceDirectory`] port that checks a device's
//! secret at `hello` and records its connectivity.
//!
//! [`MemoryDirectory`] is the embedded default and the test double;
//! [`TenancyDirectory`] adapts hse-core's [`TenancyStore`] (its system paths
//! `device_secret_hash` and `set_device_status`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::Utc;
use hse_core::model::DeviceStatus;
use hse_core::{DeviceId, Secret, SecretHash, TenancyStore};

use crate::error::DirectoryError;

/// Device credentials and connectivity, as the session needs them.
#[async_trait]
pub trait DeviceDirectory: Send + Sync + fmt::Debug {
    /// Whether `secret` is the device's. An unknown device is simply
    /// `false`, indistinguishable from a wrong secret.
    async fn verify(&self, device_id: DeviceId, secret: &Secret) -> Result<bool, DirectoryError>;
    /// Records the device's connectivity.
    async fn set_status(
        &self,
        device_id: DeviceId,
        status: DeviceStatus,
    ) -> Result<(), DirectoryError>;
}

/// In-memory directory: secrets as hashes, statuses in a map.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    devices: Mutex<HashMap<DeviceId, (SecretHash, DeviceStatus)>>,
}

impl MemoryDirectory {
    /// An empty directory.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a device with the hash of its secret.
    pub fn register(&self, device_id: DeviceId, secret: SecretHash) {
        self.lock()
            .insert(device_id, (secret, DeviceStatus::Offline));
    }

    /// The device's last recorded status.
    #[must_use]
    pub fn status(&self, device_id: DeviceId) -> Option<DeviceStatus> {
        self.lock().get(&device_id).map(|(_, s)| *s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, (SecretHash, DeviceStatus)>> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl DeviceDirectory for MemoryDirectory {
    async fn verify(&self, device_id: DeviceId, secret: &Secret) -> Result<bool, DirectoryError> {
        Ok(self
            .lock()
            .get(&device_id)
            .is_some_and(|(hash, _)| hash.matches(secret)))
    }

    async fn set_status(
        &self,
        device_id: DeviceId,
        status: DeviceStatus,
    ) -> Result<(), DirectoryError> {
        if let Some(entry) = self.lock().get_mut(&device_id) {
            entry.1 = status;
        }
        Ok(())
    }
}

/// The directory over hse-core's tenancy store.
#[derive(Clone)]
pub struct TenancyDirectory {
    store: Arc<dyn TenancyStore>,
}

impl TenancyDirectory {
    /// Wraps a tenancy store.
    #[must_use]
    pub fn new(store: Arc<dyn TenancyStore>) -> Self {
        Self { store }
    }
}

impl fmt::Debug for TenancyDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenancyDirectory").finish_non_exhaustive()
    }
}

#[async_trait]
impl DeviceDirectory for TenancyDirectory {
    async fn verify(&self, device_id: DeviceId, secret: &Secret) -> Result<bool, DirectoryError> {
        let hash = self
            .store
            .device_secret_hash(device_id)
            .await
            .map_err(|e| DirectoryError(e.to_string()))?;
        Ok(hash.is_some_and(|h| h.matches(secret)))
    }

    async fn set_status(
        &self,
        device_id: DeviceId,
        status: DeviceStatus,
    ) -> Result<(), DirectoryError> {
        self.store
            .set_device_status(device_id, status, Utc::now())
            .await
            .map_err(|e| DirectoryError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_registered_secret_verifies() {
        let dir = MemoryDirectory::new();
        let id = DeviceId::new();
        let secret = Secret::generate().unwrap();
        dir.register(id, secret.hash());
        assert!(dir.verify(id, &secret).await.unwrap());
        assert!(
            !dir.verify(id, &Secret::from_presented("guess"))
                .await
                .unwrap()
        );
        assert!(!dir.verify(DeviceId::new(), &secret).await.unwrap());
        dir.set_status(id, DeviceStatus::Online).await.unwrap();
        assert_eq!(dir.status(id), Some(DeviceStatus::Online));
    }
}
