//! The tenancy model: plain data, validated on the way in.
//!
//! Each entity comes with a `New*` input (what a caller supplies to create
//! one) and a `*Patch` (a partial update). Both are checked by pure methods
//! here, so every store applies exactly the same rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::{
    AreaId, DeviceId, EstablishmentId, OrganizationId, PartnerCompanyId, RoleId, UserId,
};
use crate::value::{Email, GeoPoint, MacAddress, Metadata, Timezone, optional_text, text};

const NAME_MAX: usize = 200;
const FIELD_MAX: usize = 500;

/// A company that resells the platform to organizations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerCompany {
    /// Its id.
    pub id: PartnerCompanyId,
    /// Company name.
    pub name: String,
    /// Contact address, if given.
    pub contact_email: Option<Email>,
    /// Contact phone (free text).
    pub contact_phone: String,
    /// Postal address (free text).
    pub address: String,
    /// Inactive companies keep their data but cannot sign in.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to create a [`PartnerCompany`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPartnerCompany {
    /// Company name, 1–200 characters.
    pub name: String,
    /// Contact address.
    #[serde(default)]
    pub contact_email: Option<Email>,
    /// Contact phone.
    #[serde(default)]
    pub contact_phone: String,
    /// Postal address.
    #[serde(default)]
    pub address: String,
}

impl NewPartnerCompany {
    /// Validates the input and builds the entity.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field.
    pub fn build(self, now: DateTime<Utc>) -> Result<PartnerCompany, CoreError> {
        Ok(PartnerCompany {
            id: PartnerCompanyId::new(),
            name: text("name", &self.name, NAME_MAX)?,
            contact_email: self.contact_email,
            contact_phone: optional_text("contact_phone", &self.contact_phone, 50)?,
            address: optional_text("address", &self.address, FIELD_MAX)?,
            is_active: true,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial update of a [`PartnerCompany`]; absent fields stay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerCompanyPatch {
    /// New name.
    pub name: Option<String>,
    /// New contact address.
    pub contact_email: Option<Email>,
    /// New phone.
    pub contact_phone: Option<String>,
    /// New postal address.
    pub address: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

impl PartnerCompanyPatch {
    /// Applies the patch to `company`, validating every given field first.
    ///
    /// # Errors
    /// [`CoreError::Invalid`]; `company` is untouched then.
    pub fn apply(self, company: &mut PartnerCompany, now: DateTime<Utc>) -> Result<(), CoreError> {
        let mut next = company.clone();
        if let Some(v) = self.name {
            next.name = text("name", &v, NAME_MAX)?;
        }
        if let Some(v) = self.contact_email {
            next.contact_email = Some(v);
        }
        if let Some(v) = self.contact_phone {
            next.contact_phone = optional_text("contact_phone", &v, 50)?;
        }
        if let Some(v) = self.address {
            next.address = optional_text("address", &v, FIELD_MAX)?;
        }
        if let Some(v) = self.is_active {
            next.is_active = v;
        }
        next.updated_at = now;
        *company = next;
        Ok(())
    }
}

/// A customer of the platform; run by a partner company, or directly by the
/// platform when `partner_company_id` is `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Organization {
    /// Its id.
    pub id: OrganizationId,
    /// The partner company that runs it, if any.
    pub partner_company_id: Option<PartnerCompanyId>,
    /// Name.
    pub name: String,
    /// Industry (free text: hospitality, education, ...).
    pub industry: String,
    /// Contact address.
    pub contact_email: Option<Email>,
    /// Contact phone.
    pub contact_phone: String,
    /// Postal address.
    pub address: String,
    /// Inactive organizations keep their data.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to create an [`Organization`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewOrganization {
    /// The partner company that will run it; `None` for platform-direct.
    #[serde(default)]
    pub partner_company_id: Option<PartnerCompanyId>,
    /// Name, 1–200 characters.
    pub name: String,
    /// Industry.
    #[serde(default)]
    pub industry: String,
    /// Contact address.
    #[serde(default)]
    pub contact_email: Option<Email>,
    /// Contact phone.
    #[serde(default)]
    pub contact_phone: String,
    /// Postal address.
    #[serde(default)]
    pub address: String,
}

impl NewOrganization {
    /// Validates the input and builds the entity.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field.
    pub fn build(self, now: DateTime<Utc>) -> Result<Organization, CoreError> {
        Ok(Organization {
            id: OrganizationId::new(),
            partner_company_id: self.partner_company_id,
            name: text("name", &self.name, NAME_MAX)?,
            industry: optional_text("industry", &self.industry, 100)?,
            contact_email: self.contact_email,
            contact_phone: optional_text("contact_phone", &self.contact_phone, 50)?,
            address: optional_text("address", &self.address, FIELD_MAX)?,
            is_active: true,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial update of an [`Organization`]. Its partner never changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrganizationPatch {
    /// New name.
    pub name: Option<String>,
    /// New industry.
    pub industry: Option<String>,
    /// New contact address.
    pub contact_email: Option<Email>,
    /// New phone.
    pub contact_phone: Option<String>,
    /// New postal address.
    pub address: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

impl OrganizationPatch {
    /// Applies the patch, validating every given field first.
    ///
    /// # Errors
    /// [`CoreError::Invalid`]; `org` is untouched then.
    pub fn apply(self, org: &mut Organization, now: DateTime<Utc>) -> Result<(), CoreError> {
        let mut next = org.clone();
        if let Some(v) = self.name {
            next.name = text("name", &v, NAME_MAX)?;
        }
        if let Some(v) = self.industry {
            next.industry = optional_text("industry", &v, 100)?;
        }
        if let Some(v) = self.contact_email {
            next.contact_email = Some(v);
        }
        if let Some(v) = self.contact_phone {
            next.contact_phone = optional_text("contact_phone", &v, 50)?;
        }
        if let Some(v) = self.address {
            next.address = optional_text("address", &v, FIELD_MAX)?;
        }
        if let Some(v) = self.is_active {
            next.is_active = v;
        }
        next.updated_at = now;
        *org = next;
        Ok(())
    }
}

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

/// A person who signs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Sign-in address, unique.
    pub email: Email,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// The user's role.
    pub role_id: RoleId,
    /// The partner company it belongs to (partners, and the partner of its
    /// organization for everyone below).
    pub partner_company_id: Option<PartnerCompanyId>,
    /// The organization it belongs to (admins, users, custom roles).
    pub organization_id: Option<OrganizationId>,
    /// Deactivated users cannot sign in.
    pub is_active: bool,
    /// Whether the email was confirmed (accepting an invitation does it).
    pub email_verified: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to create a [`User`]. Placement: none for root, a partner company
/// for partners, an organization for everyone else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    /// Sign-in address.
    pub email: Email,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// The role to give.
    pub role_id: RoleId,
    /// For partners: their company.
    #[serde(default)]
    pub partner_company_id: Option<PartnerCompanyId>,
    /// For everyone below partner: their organization.
    #[serde(default)]
    pub organization_id: Option<OrganizationId>,
}

impl NewUser {
    /// Validates the names and builds the user. `partner_company_id` is
    /// the placement's partner (the organization's, when placed in one).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the first bad field.
    pub fn build(
        self,
        partner_company_id: Option<PartnerCompanyId>,
        verified: bool,
        now: DateTime<Utc>,
    ) -> Result<User, CoreError> {
        Ok(User {
            id: UserId::new(),
            email: self.email,
            first_name: text("first_name", &self.first_name, 100)?,
            last_name: optional_text("last_name", &self.last_name, 100)?,
            role_id: self.role_id,
            partner_company_id,
            organization_id: self.organization_id,
            is_active: true,
            email_verified: verified,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial update of a [`User`]. Role and tenancy changes go through
/// their own rules and are not patchable here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatch {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
}

impl UserPatch {
    /// Applies the patch, validating every given field first.
    ///
    /// # Errors
    /// [`CoreError::Invalid`]; `user` is untouched then.
    pub fn apply(self, user: &mut User, now: DateTime<Utc>) -> Result<(), CoreError> {
        let mut next = user.clone();
        if let Some(v) = self.first_name {
            next.first_name = text("first_name", &v, 100)?;
        }
        if let Some(v) = self.last_name {
            next.last_name = optional_text("last_name", &v, 100)?;
        }
        if let Some(v) = self.is_active {
            next.is_active = v;
        }
        next.updated_at = now;
        *user = next;
        Ok(())
    }
}

/// A user's assignment to an establishment, optionally with an extra role
/// that applies only there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserEstablishment {
    /// The user.
    pub user_id: UserId,
    /// The establishment.
    pub establishment_id: EstablishmentId,
    /// A role that applies only in this establishment.
    pub role_id: Option<RoleId>,
    /// When assigned.
    pub assigned_at: DateTime<Utc>,
    /// Who assigned it.
    pub assigned_by: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_patch_leaves_the_entity_untouched() {
        let now = Utc::now();
        let mut org = NewOrganization {
            name: "Acme".into(),
            ..Default::default()
        }
        .build(now)
        .unwrap();
        let before = org.clone();
        let patch = OrganizationPatch {
            name: Some("New".into()),
            industry: Some("x".repeat(101)),
            ..Default::default()
        };
        assert!(patch.apply(&mut org, now).is_err());
        assert_eq!(org, before);
    }

    #[test]
    fn an_area_cannot_be_its_own_parent() {
        let now = Utc::now();
        let new = NewArea {
            establishment_id: EstablishmentId::new(),
            parent_area_id: None,
            name: "Room 1".into(),
            kind: "room".into(),
            floor: Some(1),
            metadata: Metadata::default(),
        };
        let mut area = new.build(now).unwrap();
        let patch = AreaPatch {
            parent_area_id: Some(Some(area.id)),
            ..Default::default()
        };
        assert!(matches!(
            patch.apply(&mut area, now),
            Err(CoreError::Invalid {
                field: "parent_area_id",
                ..
            })
        ));
    }

    #[test]
    fn area_patches_tell_absent_parent_from_null_parent() {
        let absent: AreaPatch = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.parent_area_id, None);
        let null: AreaPatch = serde_json::from_str(r#"{"parent_area_id":null}"#).unwrap();
        assert_eq!(null.parent_area_id, Some(None));
    }

    #[test]
    fn a_serialized_area_patch_without_a_parent_does_not_detach() {
        let patch = AreaPatch {
            name: Some("Room 2".into()),
            ..Default::default()
        };
        let text = serde_json::to_string(&patch).unwrap();
        assert!(!text.contains("parent_area_id"), "{text}");
        assert_eq!(serde_json::from_str::<AreaPatch>(&text).unwrap(), patch);
    }

    #[test]
    fn unknown_fields_in_inputs_are_refused() {
        assert!(
            serde_json::from_str::<NewPartnerCompany>(r#"{"name":"x","is_root":true}"#).is_err()
        );
    }

    #[test]
    fn device_status_round_trips() {
        for s in [
            DeviceStatus::Online,
            DeviceStatus::Offline,
            DeviceStatus::Error,
            DeviceStatus::Maintenance,
        ] {
            assert_eq!(DeviceStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(DeviceStatus::parse("exploded").is_err());
    }
}
