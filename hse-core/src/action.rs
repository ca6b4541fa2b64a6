//! The permission catalogue: atomic actions a role can be granted.
//!
//! The catalogue is code, not data: it is the single source the PostgreSQL
//! adapter seeds its `actions` table from, so the two cannot drift. Some
//! actions are *exclusive* to a system level: only roles of
//! that level or higher hold them, and they can never be granted to a custom
//! role.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::role::SystemRole;

/// The name of an action, e.g. `create_user`: 1–64 chars of `[a-z_]`,
/// and present in the [`catalogue`]. It holds its catalogue entry, so it
/// is a pointer to copy (principals clone their permission sets on every
/// request) and its [`definition`](Self::definition) exists by
/// construction.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct ActionName(&'static Action);

impl ActionName {
    /// Parses a name, refusing anything not in the catalogue.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming the field `action` when the name is
    /// unknown.
    pub fn parse(name: &str) -> Result<Self, CoreError> {
        find(name)
            .map(Self)
            .ok_or_else(|| CoreError::invalid("action", format!("unknown action `{name}`")))
    }

    /// An action named in code (a catalogue constant); the catalogue tests
    /// pin every such name, so this cannot fail at run time.
    pub(crate) fn known(name: &str) -> Self {
        Self::parse(name).unwrap_or_else(|_| unreachable!("`{name}` is in the catalogue"))
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        self.0.name
    }

    /// The catalogue entry of this action.
    #[must_use]
    pub fn definition(&self) -> &'static Action {
        self.0
    }
}

impl PartialEq for ActionName {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ActionName {}

impl PartialOrd for ActionName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ActionName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

impl std::hash::Hash for ActionName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl fmt::Debug for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ActionName").field(&self.0.name).finish()
    }
}

impl TryFrom<String> for ActionName {
    type Error = CoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ActionName> for String {
    fn from(value: ActionName) -> Self {
        value.0.name.to_owned()
    }
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

/// One entry of the permission catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Action {
    /// Unique name, e.g. `create_user`.
    pub name: &'static str,
    /// The resource it acts on, e.g. `user`.
    pub resource: &'static str,
    /// The verb, e.g. `create`.
    pub verb: &'static str,
    /// Grouping for user interfaces, e.g. `user_management`.
    pub category: &'static str,
    /// Human description.
    pub description: &'static str,
    /// When set, only roles of this level or higher may hold it, and it is
    /// never grantable to a custom role.
    pub exclusive_to: Option<SystemRole>,
}

impl Action {
    /// The action's name as an [`ActionName`].
    #[must_use]
    pub fn action_name(&'static self) -> ActionName {
        ActionName(self)
    }

    /// Whether a role of system level `level` holds this action by default.
    #[must_use]
    pub fn held_by_default(&self, level: SystemRole) -> bool {
        match (level, self.exclusive_to) {
            (SystemRole::Root, _) => true,
            (SystemRole::User, _) => self.verb == "read" && self.exclusive_to.is_none(),
            (_, None) => true,
            (_, Some(owner)) => level.hierarchy() <= owner.hierarchy(),
        }
    }
}

const fn action(
    name: &'static str,
    resource: &'static str,
    verb: &'static str,
    category: &'static str,
    description: &'static str,
    exclusive_to: Option<SystemRole>,
) -> Action {
    Action {
        name,
        resource,
        verb,
        category,
        description,
        exclusive_to,
    }
}

use SystemRole::{Admin, Partner, Root};

const T: &str = "tenancy";
const U: &str = "user_management";
const D: &str = "device_control";
const B: &str = "booking";
const O: &str = "operations";

#[rustfmt::skip]
static CATALOGUE: &[Action] = &[
    action("create_partner_company", "partner_company", "create", T, "Create partner companies", Some(Root)),
    action("read_partner_company", "partner_company", "read", T, "View partner companies", None),
    action("update_partner_company", "partner_company", "update", T, "Edit partner companies", None),
    action("delete_partner_company", "partner_company", "delete", T, "Delete partner companies", Some(Root)),
    action("manage_system_roles", "role", "manage", U, "Change the system roles", Some(Root)),
    action("view_all_organizations", "organization", "read_all", T, "See every organization", Some(Root)),
    action("create_organization", "organization", "create", T, "Create organizations", Some(Partner)),
    action("read_organization", "organization", "read", T, "View organizations", None),
    action("update_organization", "organization", "update", T, "Edit organizations", None),
    action("delete_organization", "organization", "delete", T, "Delete organizations", Some(Partner)),
    action("view_partner_analytics", "analytics", "read_partner", T, "Partner-wide analytics", Some(Partner)),
    action("create_establishment", "establishment", "create", T, "Create establishments", Some(Admin)),
    action("read_establishment", "establishment", "read", T, "View establishments", None),
    action("update_establishment", "establishment", "update", T, "Edit establishments", None),
    action("delete_establishment", "establishment", "delete", T, "Delete establishments", Some(Admin)),
    action("assign_establishment_user", "establishment", "assign", U, "Assign users to establishments", None),
    action("manage_organization_users", "user", "manage", U, "Manage every user of the organization", Some(Admin)),
    action("create_area", "area", "create", T, "Create areas", None),
    action("read_area", "area", "read", T, "View areas", None),
    action("update_area", "area", "update", T, "Edit areas", None),
    action("delete_area", "area", "delete", T, "Delete areas", None),
    action("create_device", "device", "create", D, "Register devices", None),
    action("read_device", "device", "read", D, "View devices, their state and events", None),
    action("update_device", "device", "update", D, "Edit devices", None),
    action("delete_device", "device", "delete", D, "Remove devices", None),
    action("command_device", "device", "command", D, "Send commands to devices", None),
    action("create_user", "user", "create", U, "Create users", None),
    action("read_user", "user", "read", U, "View users", None),
    action("update_user", "user", "update", U, "Edit users", None),
    action("delete_user", "user", "delete", U, "Deactivate users", None),
    action("create_role", "role", "create", U, "Create custom roles", None),
    action("read_role", "role", "read", U, "View roles", None),
    action("update_role", "role", "update", U, "Edit custom roles", None),
    action("delete_role", "role", "delete", U, "Delete custom roles", None),
    action("create_invitation", "invitation", "create", U, "Invite users", None),
    action("create_api_key", "api_key", "create", U, "Create API keys", None),
    action("read_api_key", "api_key", "read", U, "View API keys", None),
    action("delete_api_key", "api_key", "delete", U, "Revoke API keys", None),
    action("create_guest", "guest", "create", B, "Register guests", None),
    action("read_guest", "guest", "read", B, "View guests", None),
    action("update_guest", "guest", "update", B, "Edit guests", None),
    action("create_booking", "booking", "create", B, "Create bookings", None),
    action("read_booking", "booking", "read", B, "View bookings, codes and notifications", None),
    action("update_booking", "booking", "update", B, "Modify, confirm and cancel bookings", None),
    action("delete_booking", "booking", "delete", B, "Delete pending or confirmed bookings", None),
    action("read_dead_letter", "dead_letter", "read", O, "View dead-lettered events", None),
    action("replay_dead_letter", "dead_letter", "replay", O, "Replay dead-lettered events", None),
];

/// The whole permission catalogue.
#[must_use]
pub fn catalogue() -> &'static [Action] {
    CATALOGUE
}

/// Looks an action up by name.
#[must_use]
pub fn find(name: &str) -> Option<&'static Action> {
    CATALOGUE.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_are_unique_and_well_formed() {
        let mut names: Vec<_> = catalogue().iter().map(|a| a.name).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), catalogue().len());
    }

    #[test]
    fn the_seed_exclusive_permissions_are_in_the_catalogue() {
        for (name, level) in [
            ("create_partner_company", Root),
            ("delete_partner_company", Root),
            ("manage_system_roles", Root),
            ("view_all_organizations", Root),
            ("create_organization", Partner),
            ("delete_organization", Partner),
            ("view_partner_analytics", Partner),
            ("create_establishment", Admin),
            ("delete_establishment", Admin),
            ("manage_organization_users", Admin),
        ] {
            assert_eq!(
                find(name).and_then(|a| a.exclusive_to),
                Some(level),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_action_names_are_refused() {
        assert!(ActionName::parse("create_user").is_ok());
        assert!(matches!(
            ActionName::parse("launch_missiles"),
            Err(CoreError::Invalid {
                field: "action",
                ..
            })
        ));
    }

    #[test]
    fn exclusive_actions_are_held_by_their_level_and_above_only() {
        let create_org = find("create_organization").unwrap();
        assert!(create_org.held_by_default(Root));
        assert!(create_org.held_by_default(Partner));
        assert!(!create_org.held_by_default(Admin));
        assert!(!create_org.held_by_default(SystemRole::User));
        let read_area = find("read_area").unwrap();
        assert!(read_area.held_by_default(SystemRole::User));
        assert!(
            !find("create_area")
                .unwrap()
                .held_by_default(SystemRole::User)
        );
    }
}
