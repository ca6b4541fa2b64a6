//! Devices and their connectivity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::{AreaId, DeviceId, EstablishmentId};
use crate::value::{MacAddress, Metadata, optional_text, text};

/// The connectivity state of a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeviceStatus {
    /// Connected and heard from recently.
    Online,
    /// Not connected (the initial state).
    #[default]
    Offline,
    /// Reporting a fault.
    Error,
    /// Deliberately out of service.
    Maintenance,
}

impl DeviceStatus {
    /// The status as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Error => "error",
            Self::Maintenance => "maintenance",
        }
    }

    /// Parses a stored status.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `status`.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        match value {
            "online" => Ok(Self::Online),
            "offline" => Ok(Self::Offline),
            "error" => Ok(Self::Error),
            "maintenance" => Ok(Self::Maintenance),
            _ => Err(CoreError::invalid(
                "status",
                format!("unknown device status `{value}`"),
            )),
        }
    }
}

/// A device installed in an area: sensor, controller, door lock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// Its id (also the id it says hello with).
    pub id: DeviceId,
    /// The establishment of its area (kept for scoping).
    pub establishment_id: EstablishmentId,
    /// The area it is installed in.
    pub area_id: AreaId,
    /// `sensor`, `actuator`, `doorlock`, ...
    pub device_type: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model; door locks use it to pick their code length.
    pub model: String,
    /// Serial number.
    pub serial_number: String,
    /// MAC address, if it has one.
    pub mac_address: Option<MacAddress>,
    /// Wire protocol (`hse-tcp`, `websocket`, `mqtt`, ...).
    pub protocol: String,
    /// Connectivity state.
    pub status: DeviceStatus,
    /// Device-specific settings.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to register a [`Device`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewDevice {
    /// The area to install it in.
    pub area_id: AreaId,
    /// Type, 1–50 characters.
    pub device_type: String,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: String,
    /// Model.
    #[serde(default)]
    pub model: String,
    /// Serial number.
    #[serde(default)]
    pub serial_number: String,
    /// MAC address.
    #[serde(default)]
    pub mac_address: Option<MacAddress>,
    /// Protocol, 1–50 characters.
    pub protocol: String,
    /// Settings.
    #[serde(default)]
    pub metadata: Metadata,
}

impl NewDevice {
    /// Validates the input and builds the entity in `establishment_id`
    /// (the area's, looked up by the store).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field.
    pub fn build(
        self,
        establishment_id: EstablishmentId,
        now: DateTime<Utc>,
    ) -> Result<Device, CoreError> {
        Ok(Device {
            id: DeviceId::new(),
            establishment_id,
            area_id: self.area_id,
            device_type: text("device_type", &self.device_type, 50)?,
            manufacturer: optional_text("manufacturer", &self.manufacturer, 100)?,
            model: optional_text("model", &self.model, 100)?,
            serial_number: optional_text("serial_number", &self.serial_number, 100)?,
            mac_address: self.mac_address,
            protocol: text("protocol", &self.protocol, 50)?,
            status: DeviceStatus::Offline,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial update of a [`Device`]. Moving it changes its area, within the
/// same establishment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevicePatch {
    /// New area (same establishment).
    pub area_id: Option<AreaId>,
    /// New model.
    pub model: Option<String>,
    /// New serial number.
    pub serial_number: Option<String>,
    /// New MAC address.
    pub mac_address: Option<MacAddress>,
    /// New status.
    pub status: Option<DeviceStatus>,
    /// Replaces the settings.
    pub metadata: Option<Metadata>,
}

impl DevicePatch {
    /// Applies the patch, validating every given field first.
    ///
    /// # Errors
    /// [`CoreError::Invalid`]; `device` is untouched then.
    pub fn apply(self, device: &mut Device, now: DateTime<Utc>) -> Result<(), CoreError> {
        let mut next = device.clone();
        if let Some(v) = self.area_id {
            next.area_id = v;
        }
        if let Some(v) = self.model {
            next.model = optional_text("model", &v, 100)?;
        }
        if let Some(v) = self.serial_number {
            next.serial_number = optional_text("serial_number", &v, 100)?;
        }
        if let Some(v) = self.mac_address {
            next.mac_address = Some(v);
        }
        if let Some(v) = self.status {
            next.status = v;
        }
        if let Some(v) = self.metadata {
            next.metadata = v;
        }
        next.updated_at = now;
        *device = next;
        Ok(())
    }
}
