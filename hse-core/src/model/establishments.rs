//! Establishments: the places an organization runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FIELD_MAX, NAME_MAX};
use crate::error::CoreError;
use crate::id::{EstablishmentId, OrganizationId};
use crate::value::{GeoPoint, Metadata, Timezone, optional_text, text};

/// A place an organization runs: a hotel, an office, a campus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Establishment {
    /// Its id.
    pub id: EstablishmentId,
    /// The organization that runs it.
    pub organization_id: OrganizationId,
    /// Name.
    pub name: String,
    /// Postal address.
    pub address: String,
    /// Position, if known.
    pub location: Option<GeoPoint>,
    /// IANA time zone; local times (check-in at 15:00) resolve in it.
    pub timezone: Timezone,
    /// Inactive establishments keep their data.
    pub is_active: bool,
    /// Establishment-specific settings.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to create an [`Establishment`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEstablishment {
    /// The organization that runs it.
    pub organization_id: OrganizationId,
    /// Name, 1–200 characters.
    pub name: String,
    /// Postal address.
    #[serde(default)]
    pub address: String,
    /// Position.
    #[serde(default)]
    pub location: Option<GeoPoint>,
    /// IANA time zone.
    pub timezone: Timezone,
    /// Settings.
    #[serde(default)]
    pub metadata: Metadata,
}

impl NewEstablishment {
    /// Validates the input and builds the entity.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field.
    pub fn build(self, now: DateTime<Utc>) -> Result<Establishment, CoreError> {
        Ok(Establishment {
            id: EstablishmentId::new(),
            organization_id: self.organization_id,
            name: text("name", &self.name, NAME_MAX)?,
            address: optional_text("address", &self.address, FIELD_MAX)?,
            location: self.location,
            timezone: self.timezone,
            is_active: true,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial update of an [`Establishment`]. Its organization never changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EstablishmentPatch {
    /// New name.
    pub name: Option<String>,
    /// New address.
    pub address: Option<String>,
    /// New position.
    pub location: Option<GeoPoint>,
    /// New time zone.
    pub timezone: Option<Timezone>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Replaces the settings.
    pub metadata: Option<Metadata>,
}

impl EstablishmentPatch {
    /// Applies the patch, validating every given field first.
    ///
    /// # Errors
    /// [`CoreError::Invalid`]; `est` is untouched then.
    pub fn apply(self, est: &mut Establishment, now: DateTime<Utc>) -> Result<(), CoreError> {
        let mut next = est.clone();
        if let Some(v) = self.name {
            next.name = text("name", &v, NAME_MAX)?;
        }
        if let Some(v) = self.address {
            next.address = optional_text("address", &v, FIELD_MAX)?;
        }
        if let Some(v) = self.location {
            next.location = Some(v);
        }
        if let Some(v) = self.timezone {
            next.timezone = v;
        }
        if let Some(v) = self.is_active {
            next.is_active = v;
        }
        if let Some(v) = self.metadata {
            next.metadata = v;
        }
        next.updated_at = now;
        *est = next;
        Ok(())
    }
}
