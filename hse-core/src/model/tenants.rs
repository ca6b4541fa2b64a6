//! Partner companies and organizations: the two tenant levels.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FIELD_MAX, NAME_MAX};
use crate::error::CoreError;
use crate::id::{OrganizationId, PartnerCompanyId};
use crate::value::{Email, optional_text, text};

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
