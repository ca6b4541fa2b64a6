//! Roles and their place in the hierarchy.
//!
//! Four system roles form the spine: root (1), partner (2),
//! admin (3) and user (4). Custom roles have a hierarchy of 5 or more and are
//! scoped to an organization, optionally narrowed to one establishment. A
//! lower number is a higher rank.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::action::{ActionName, catalogue};
use crate::error::CoreError;
use crate::id::{EstablishmentId, OrganizationId, RoleId, UserId};

/// A rank in the role hierarchy; lower is more powerful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hierarchy(u16);

impl Hierarchy {
    /// The lowest hierarchy a custom role may have.
    pub const FIRST_CUSTOM: Hierarchy = Hierarchy(5);

    /// Parses a hierarchy number (1 or more).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] for 0.
    pub fn parse(value: u16) -> Result<Self, CoreError> {
        if value == 0 {
            return Err(CoreError::invalid("hierarchy", "must be 1 or more"));
        }
        Ok(Self(value))
    }

    /// The number.
    #[must_use]
    pub fn get(self) -> u16 {
        self.0
    }

    /// The system level this rank is, if it is one.
    #[must_use]
    pub fn system_role(self) -> Option<SystemRole> {
        SystemRole::ALL.into_iter().find(|r| r.hierarchy() == self)
    }

    /// Whether a role of this rank may create roles and users (root,
    /// partner, admin).
    #[must_use]
    pub fn is_manager(self) -> bool {
        self <= SystemRole::Admin.hierarchy()
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The four built-in roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SystemRole {
    /// The platform operator: sees and may do everything.
    Root,
    /// A partner company's staff.
    Partner,
    /// An organization's administrator.
    Admin,
    /// An organization's ordinary user.
    User,
}

impl SystemRole {
    /// All system roles, highest first.
    pub const ALL: [SystemRole; 4] = [Self::Root, Self::Partner, Self::Admin, Self::User];

    /// The rank: root=1, partner=2, admin=3, user=4.
    #[must_use]
    pub fn hierarchy(self) -> Hierarchy {
        Hierarchy(match self {
            Self::Root => 1,
            Self::Partner => 2,
            Self::Admin => 3,
            Self::User => 4,
        })
    }

    /// The fixed id of the system role (the same in every installation).
    #[must_use]
    pub fn id(self) -> RoleId {
        RoleId(uuid::Uuid::from_u128(
            0x0000_0000_0000_7000_8000_0000_0000_0000 | u128::from(self.hierarchy().0),
        ))
    }

    /// The role's name: `root`, `partner`, `admin`, `user`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Partner => "partner",
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    /// The system role with this fixed id.
    #[must_use]
    pub fn from_id(id: RoleId) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.id() == id)
    }

    /// The permissions this level holds by default.
    #[must_use]
    pub fn default_permissions(self) -> BTreeSet<ActionName> {
        catalogue()
            .iter()
            .filter(|a| a.held_by_default(self))
            .map(|a| a.action_name())
            .collect()
    }

    /// The grants behind the defaults: granted by nobody, at the epoch.
    #[must_use]
    pub fn grants(self) -> Vec<PermissionGrant> {
        self.default_permissions()
            .into_iter()
            .map(|action| PermissionGrant {
                role_id: self.id(),
                action,
                granted_by: None,
                granted_at: DateTime::UNIX_EPOCH,
            })
            .collect()
    }

    /// The complete system role record.
    #[must_use]
    pub fn role(self) -> Role {
        Role {
            id: self.id(),
            name: self.name().to_owned(),
            description: format!("System role {}", self.name()),
            hierarchy: self.hierarchy(),
            organization_id: None,
            establishment_id: None,
            created_by: None,
            permissions: self.default_permissions(),
            created_at: DateTime::UNIX_EPOCH,
        }
    }
}

/// A role: a rank plus a set of permissions, possibly scoped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Role {
    /// The role's id; system roles have fixed ids.
    pub id: RoleId,
    /// Display name.
    pub name: String,
    /// Free description.
    pub description: String,
    /// Its rank; 1–4 are system roles, 5+ custom.
    pub hierarchy: Hierarchy,
    /// The organization a custom role belongs to (`None` for system roles).
    pub organization_id: Option<OrganizationId>,
    /// The establishment a custom role is narrowed to, if any.
    pub establishment_id: Option<EstablishmentId>,
    /// Who created it (`None` for system roles).
    pub created_by: Option<UserId>,
    /// The granted actions.
    pub permissions: BTreeSet<ActionName>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Role {
    /// Whether this is one of the four system roles.
    #[must_use]
    pub fn is_system(&self) -> bool {
        SystemRole::from_id(self.id).is_some()
    }
}

/// The input to create a custom role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewRole {
    /// Display name, 1–100 characters.
    pub name: String,
    /// Free description.
    #[serde(default)]
    pub description: String,
    /// Rank; must be 5 or more and below the creator's.
    pub hierarchy: Hierarchy,
    /// The organization it belongs to.
    pub organization_id: OrganizationId,
    /// Narrows it to one establishment of that organization.
    #[serde(default)]
    pub establishment_id: Option<EstablishmentId>,
    /// The actions to grant.
    pub permissions: BTreeSet<ActionName>,
}

/// One permission grant: which action a role holds, and who granted it when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionGrant {
    /// The role holding the permission.
    pub role_id: RoleId,
    /// The action granted.
    pub action: ActionName,
    /// Who granted it (`None` for the system catalogue).
    pub granted_by: Option<UserId>,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roles_have_their_seed_ranks_and_stable_ids() {
        let ranks: Vec<u16> = SystemRole::ALL
            .iter()
            .map(|r| r.hierarchy().get())
            .collect();
        assert_eq!(ranks, [1, 2, 3, 4]);
        for role in SystemRole::ALL {
            assert_eq!(SystemRole::from_id(role.id()), Some(role));
            assert_eq!(role.hierarchy().system_role(), Some(role));
        }
        assert_eq!(Hierarchy::FIRST_CUSTOM.system_role(), None);
    }

    #[test]
    fn only_root_partner_and_admin_are_managers() {
        assert!(SystemRole::Admin.hierarchy().is_manager());
        assert!(!SystemRole::User.hierarchy().is_manager());
        assert!(!Hierarchy::FIRST_CUSTOM.is_manager());
    }

    #[test]
    fn root_holds_every_action_and_user_only_reads() {
        assert_eq!(
            SystemRole::Root.default_permissions().len(),
            catalogue().len()
        );
        let user = SystemRole::User.default_permissions();
        assert!(user.iter().all(|a| a.definition().verb == "read"));
        assert!(!user.is_empty());
    }

    #[test]
    fn hierarchy_zero_is_refused() {
        assert!(Hierarchy::parse(0).is_err());
        assert_eq!(Hierarchy::parse(7).map(Hierarchy::get).ok(), Some(7));
    }
}
