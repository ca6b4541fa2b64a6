//! Areas: the nested parts of an establishment.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::NAME_MAX;
use crate::error::CoreError;
use crate::id::{AreaId, EstablishmentId};
use crate::value::{Metadata, text};

/// A part of an establishment (a room, a floor, a wing); areas nest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Area {
    /// Its id.
    pub id: AreaId,
    /// The establishment it belongs to.
    pub establishment_id: EstablishmentId,
    /// The enclosing area, if any (same establishment, never a cycle).
    pub parent_area_id: Option<AreaId>,
    /// Name.
    pub name: String,
    /// Kind of area (`room`, `office`, `storage`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Floor number, if meaningful.
    pub floor: Option<i32>,
    /// Area-specific settings.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to create an [`Area`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewArea {
    /// The establishment.
    pub establishment_id: EstablishmentId,
    /// The enclosing area.
    #[serde(default)]
    pub parent_area_id: Option<AreaId>,
    /// Name, 1–200 characters.
    pub name: String,
    /// Kind, 1–50 characters.
    #[serde(rename = "type")]
    pub kind: String,
    /// Floor.
    #[serde(default)]
    pub floor: Option<i32>,
    /// Settings.
    #[serde(default)]
    pub metadata: Metadata,
}

impl NewArea {
    /// Validates the input and builds the entity (the parent is checked by
    /// the store, which knows the tree).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field.
    pub fn build(self, now: DateTime<Utc>) -> Result<Area, CoreError> {
        Ok(Area {
            id: AreaId::new(),
            establishment_id: self.establishment_id,
            parent_area_id: self.parent_area_id,
            name: text("name", &self.name, NAME_MAX)?,
            kind: text("type", &self.kind, 50)?,
            floor: self.floor,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial update of an [`Area`]. `parent_area_id: Some(None)` detaches it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AreaPatch {
    /// New name.
    pub name: Option<String>,
    /// New kind.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// New parent (`Some(None)`: none). Absent stays absent when
    /// serialized: `null` would detach the area.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_area_id: Option<Option<AreaId>>,
    /// New floor.
    pub floor: Option<i32>,
    /// Replaces the settings.
    pub metadata: Option<Metadata>,
}

impl AreaPatch {
    /// Applies the patch, validating every given field first (cycles are
    /// checked by the store).
    ///
    /// # Errors
    /// [`CoreError::Invalid`]; `area` is untouched then.
    pub fn apply(self, area: &mut Area, now: DateTime<Utc>) -> Result<(), CoreError> {
        let mut next = area.clone();
        if let Some(v) = self.name {
            next.name = text("name", &v, NAME_MAX)?;
        }
        if let Some(v) = self.kind {
            next.kind = text("type", &v, 50)?;
        }
        if let Some(v) = self.parent_area_id {
            if v == Some(area.id) {
                return Err(CoreError::invalid(
                    "parent_area_id",
                    "an area cannot contain itself",
                ));
            }
            next.parent_area_id = v;
        }
        if let Some(v) = self.floor {
            next.floor = Some(v);
        }
        if let Some(v) = self.metadata {
            next.metadata = v;
        }
        next.updated_at = now;
        *area = next;
        Ok(())
    }
}

mod double_option {
    //! Serde helper: tells an absent field from an explicit `null`.
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
