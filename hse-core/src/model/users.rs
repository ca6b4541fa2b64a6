//! Users and their establishment assignments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::id::{EstablishmentId, OrganizationId, PartnerCompanyId, RoleId, UserId};
use crate::value::{Email, optional_text, text};

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
