//! The authorization rules of the tenant tree, as pure functions.
//!
//! Nothing here does I/O: callers resolve where a thing lives (a
//! [`Resource`]) and pass it in. Every refusal is a [`Denied`] that names the
//! missing permission or the rule broken, so an operator can tell why.

use serde::Serialize;

use crate::action::ActionName;
use crate::principal::{Principal, Resource};
use crate::role::{Hierarchy, NewRole, Role, SystemRole};

mod management;

pub use management::{may_change_suspension, may_manage_user};

/// Why an action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Denied {
    /// The target is outside the principal's scope. Answer it as "not
    /// found": the caller must not learn that the target exists.
    #[error("the target is outside your scope")]
    OutOfScope,
    /// The principal's role does not hold the action.
    #[error("missing permission `{action}`")]
    MissingPermission {
        /// The action that would have been needed.
        action: ActionName,
    },
    /// Only root, partner and admin create roles.
    #[error("a role of hierarchy {hierarchy} cannot create roles")]
    CannotCreateRoles {
        /// The creator's rank.
        hierarchy: Hierarchy,
    },
    /// Only root, partner and admin create users.
    #[error("a role of hierarchy {hierarchy} cannot create users")]
    CannotCreateUsers {
        /// The creator's rank.
        hierarchy: Hierarchy,
    },
    /// A created role must rank below its creator, among the custom ranks.
    #[error("a new role needs a hierarchy above {creator} and at least 5, not {requested}")]
    RoleNotBelowCreator {
        /// The creator's rank.
        creator: Hierarchy,
        /// The rank asked for.
        requested: Hierarchy,
    },
    /// The role to give outranks the principal giving it.
    #[error("role of hierarchy {role} is above your hierarchy {creator}")]
    RoleAboveCreator {
        /// The principal's rank.
        creator: Hierarchy,
        /// The rank of the role to give.
        role: Hierarchy,
    },
    /// A permission may only be granted by someone who holds it.
    #[error("cannot grant `{action}`: you do not hold it")]
    PermissionNotHeld {
        /// The permission asked for.
        action: ActionName,
    },
    /// Exclusive permissions never go to custom roles.
    #[error("cannot grant `{action}`: it is exclusive to {level:?}")]
    ExclusivePermission {
        /// The permission asked for.
        action: ActionName,
        /// The level it belongs to.
        level: SystemRole,
    },
    /// The user's tenancy does not fit the role (e.g. an admin without an
    /// organization, a partner inside an organization).
    #[error("a user with this role must belong to {expected}")]
    PlacementMismatch {
        /// What the role requires.
        expected: &'static str,
    },
    /// The user to manage is assigned to establishments the manager is not
    /// (a manager reaches only users whose establishments are all its own).
    #[error("the user is assigned to establishments you are not assigned to")]
    EstablishmentsNotHeld,
    /// Only a level above a partner company or organization suspends or
    /// reinstates it (root for a partner company; root or its partner for
    /// an organization), never the tenant itself.
    #[error("only a level above this {level} may suspend or reinstate it")]
    SuspensionFromAbove {
        /// `partner company` or `organization`.
        level: &'static str,
    },
}

/// May `principal` perform `action` on something placed at `resource`?
///
/// # Errors
/// [`Denied::OutOfScope`] when the resource is outside the principal's
/// scope (checked first, so existence never leaks), else
/// [`Denied::MissingPermission`] naming the action (also for platform-level
/// actions such as creating a partner company, whose target is no secret).
pub fn authorize(
    principal: &Principal,
    action: &ActionName,
    resource: &Resource,
) -> Result<(), Denied> {
    let holds = principal.holds(action, resource);
    if !principal.scope().contains(resource) {
        // The platform itself is no secret: when the permission is missing
        // too, say so rather than pretend the target does not exist.
        if !holds && *resource == Resource::platform() {
            return Err(Denied::MissingPermission {
                action: action.clone(),
            });
        }
        return Err(Denied::OutOfScope);
    }
    if !holds {
        return Err(Denied::MissingPermission {
            action: action.clone(),
        });
    }
    Ok(())
}

/// May `creator` create the custom role `new`, placed at `placement` (the
/// resolved resource of `new.organization_id` / `new.establishment_id`)?
///
/// Seed 6.1.2: only root, partner and admin create roles; the new role ranks
/// below its creator (and among the custom ranks, 5+); every permission
/// granted is held by the creator and exclusive to no level.
///
/// # Errors
/// The first rule broken, as a [`Denied`].
pub fn may_create_role(
    creator: &Principal,
    new: &NewRole,
    placement: &Resource,
) -> Result<(), Denied> {
    if !creator.hierarchy.is_manager() {
        return Err(Denied::CannotCreateRoles {
            hierarchy: creator.hierarchy,
        });
    }
    authorize(creator, &ActionName::known("create_role"), placement)?;
    if new.hierarchy <= creator.hierarchy || new.hierarchy < Hierarchy::FIRST_CUSTOM {
        return Err(Denied::RoleNotBelowCreator {
            creator: creator.hierarchy,
            requested: new.hierarchy,
        });
    }
    for action in &new.permissions {
        may_grant_permission(creator, action, placement)?;
    }
    Ok(())
}

/// May `creator` grant `action` to a custom role placed at `placement`?
///
/// # Errors
/// [`Denied::ExclusivePermission`] or [`Denied::PermissionNotHeld`].
pub fn may_grant_permission(
    creator: &Principal,
    action: &ActionName,
    placement: &Resource,
) -> Result<(), Denied> {
    if let Some(level) = action.definition().exclusive_to {
        return Err(Denied::ExclusivePermission {
            action: action.clone(),
            level,
        });
    }
    if !creator.holds(action, placement) {
        return Err(Denied::PermissionNotHeld {
            action: action.clone(),
        });
    }
    Ok(())
}

/// May `creator` create a user with `role`, placed at `placement` (the
/// platform for root, a partner company for partners, an organization
/// otherwise)?
///
/// Seed 6.1.2: only root, partner and admin create users, and only with
/// roles at or below their own; the placement must fit the role and lie in
/// the creator's scope.
///
/// # Errors
/// The first rule broken, as a [`Denied`].
pub fn may_create_user(
    creator: &Principal,
    role: &Role,
    placement: &Resource,
) -> Result<(), Denied> {
    if !creator.hierarchy.is_manager() {
        return Err(Denied::CannotCreateUsers {
            hierarchy: creator.hierarchy,
        });
    }
    // The rank check reveals nothing about other tenants, so it goes first.
    may_give_role(creator, role)?;
    authorize(creator, &ActionName::known("create_user"), placement)?;
    check_placement(role, placement)
}

/// May `giver` hand `role` to someone (creating a user, inviting one,
/// assigning an establishment role)? Only roles at or below the giver's own.
///
/// # Errors
/// [`Denied::RoleAboveCreator`].
pub fn may_give_role(giver: &Principal, role: &Role) -> Result<(), Denied> {
    if role.hierarchy < giver.hierarchy {
        return Err(Denied::RoleAboveCreator {
            creator: giver.hierarchy,
            role: role.hierarchy,
        });
    }
    Ok(())
}

/// Does `placement` fit a user holding `role`?
///
/// # Errors
/// [`Denied::PlacementMismatch`] naming what the role needs.
pub fn check_placement(role: &Role, placement: &Resource) -> Result<(), Denied> {
    let fits = match role.hierarchy.system_role() {
        Some(SystemRole::Root) => *placement == Resource::platform(),
        Some(SystemRole::Partner) => {
            placement.partner_company_id.is_some() && placement.organization_id.is_none()
        }
        _ => {
            placement.organization_id.is_some()
                && placement.establishment_id.is_none()
                && (role.organization_id.is_none()
                    || role.organization_id == placement.organization_id)
        }
    };
    if fits {
        return Ok(());
    }
    Err(Denied::PlacementMismatch {
        expected: match role.hierarchy.system_role() {
            Some(SystemRole::Root) => "no partner company nor organization",
            Some(SystemRole::Partner) => "a partner company and no organization",
            _ => "an organization (the role's own, for a custom role)",
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::id::{OrganizationId, PartnerCompanyId, UserId};

    fn act(name: &str) -> ActionName {
        ActionName::parse(name).unwrap()
    }

    fn who(
        role: SystemRole,
        partner: Option<PartnerCompanyId>,
        org: Option<OrganizationId>,
    ) -> Principal {
        Principal {
            user_id: UserId::new(),
            role_id: role.id(),
            hierarchy: role.hierarchy(),
            partner_company_id: partner,
            organization_id: org,
            permissions: role.default_permissions(),
            establishments: BTreeMap::new(),
        }
    }

    fn custom(org: OrganizationId, perms: &[&str]) -> NewRole {
        NewRole {
            name: "front desk".into(),
            description: String::new(),
            hierarchy: Hierarchy::parse(5).unwrap(),
            organization_id: org,
            establishment_id: None,
            permissions: perms.iter().map(|p| act(p)).collect(),
        }
    }

    fn custom_role(org: OrganizationId, hierarchy: u16) -> Role {
        Role {
            hierarchy: Hierarchy::parse(hierarchy).unwrap(),
            organization_id: Some(org),
            ..SystemRole::User.role()
        }
    }

    #[test]
    fn the_rule_helpers_only_name_catalogue_actions() {
        for name in ["create_role", "create_user"] {
            assert!(ActionName::parse(name).is_ok());
        }
    }

    #[test]
    fn authorize_allows_a_held_action_in_scope() {
        let org = OrganizationId::new();
        let admin = who(SystemRole::Admin, None, Some(org));
        assert_eq!(
            authorize(
                &admin,
                &act("create_area"),
                &Resource::organization(None, org)
            ),
            Ok(())
        );
    }

    #[test]
    fn authorize_names_the_missing_permission() {
        let org = OrganizationId::new();
        let user = who(SystemRole::User, None, Some(org));
        assert_eq!(
            authorize(
                &user,
                &act("create_area"),
                &Resource::organization(None, org)
            ),
            Err(Denied::MissingPermission {
                action: act("create_area")
            })
        );
    }

    #[test]
    fn authorize_refuses_another_tenant_as_out_of_scope_even_with_the_permission() {
        let admin = who(SystemRole::Admin, None, Some(OrganizationId::new()));
        assert_eq!(
            authorize(
                &admin,
                &act("read_area"),
                &Resource::organization(None, OrganizationId::new())
            ),
            Err(Denied::OutOfScope)
        );
    }

    #[test]
    fn platform_actions_name_the_missing_permission_and_never_pass_out_of_scope() {
        let partner = who(SystemRole::Partner, Some(PartnerCompanyId::new()), None);
        assert_eq!(
            authorize(
                &partner,
                &act("create_partner_company"),
                &Resource::platform()
            ),
            Err(Denied::MissingPermission {
                action: act("create_partner_company")
            })
        );
        assert_eq!(
            authorize(&partner, &act("create_user"), &Resource::platform()),
            Err(Denied::OutOfScope)
        );
        let root = who(SystemRole::Root, None, None);
        assert_eq!(
            authorize(&root, &act("create_partner_company"), &Resource::platform()),
            Ok(())
        );
    }

    #[test]
    fn admins_create_roles_below_them_with_permissions_they_hold() {
        let org = OrganizationId::new();
        let admin = who(SystemRole::Admin, None, Some(org));
        let new = custom(org, &["read_booking", "create_booking"]);
        assert_eq!(
            may_create_role(&admin, &new, &Resource::organization(None, org)),
            Ok(())
        );
    }

    #[test]
    fn users_cannot_create_roles() {
        let org = OrganizationId::new();
        let user = who(SystemRole::User, None, Some(org));
        assert!(matches!(
            may_create_role(&user, &custom(org, &[]), &Resource::organization(None, org)),
            Err(Denied::CannotCreateRoles { .. })
        ));
    }

    #[test]
    fn a_new_role_must_rank_below_the_custom_threshold() {
        let org = OrganizationId::new();
        let admin = who(SystemRole::Admin, None, Some(org));
        let mut new = custom(org, &[]);
        new.hierarchy = SystemRole::User.hierarchy();
        assert!(matches!(
            may_create_role(&admin, &new, &Resource::organization(None, org)),
            Err(Denied::RoleNotBelowCreator { .. })
        ));
    }

    #[test]
    fn exclusive_permissions_are_never_granted_even_by_root() {
        let org = OrganizationId::new();
        let root = who(SystemRole::Root, None, None);
        let new = custom(org, &["create_establishment"]);
        assert_eq!(
            may_create_role(&root, &new, &Resource::organization(None, org)),
            Err(Denied::ExclusivePermission {
                action: act("create_establishment"),
                level: SystemRole::Admin
            })
        );
    }

    #[test]
    fn a_creator_cannot_grant_what_it_does_not_hold() {
        let org = OrganizationId::new();
        let mut admin = who(SystemRole::Admin, None, Some(org));
        admin.permissions.remove(&act("command_device"));
        let new = custom(org, &["command_device"]);
        assert_eq!(
            may_create_role(&admin, &new, &Resource::organization(None, org)),
            Err(Denied::PermissionNotHeld {
                action: act("command_device")
            })
        );
    }

    #[test]
    fn roles_cannot_be_created_in_another_organization() {
        let admin = who(SystemRole::Admin, None, Some(OrganizationId::new()));
        let other = OrganizationId::new();
        assert_eq!(
            may_create_role(
                &admin,
                &custom(other, &[]),
                &Resource::organization(None, other)
            ),
            Err(Denied::OutOfScope)
        );
    }

    #[test]
    fn an_admin_creates_users_and_admins_in_its_organization() {
        let org = OrganizationId::new();
        let admin = who(SystemRole::Admin, None, Some(org));
        let place = Resource::organization(None, org);
        assert_eq!(
            may_create_user(&admin, &SystemRole::User.role(), &place),
            Ok(())
        );
        assert_eq!(
            may_create_user(&admin, &SystemRole::Admin.role(), &place),
            Ok(())
        );
        assert_eq!(
            may_create_user(&admin, &custom_role(org, 5), &place),
            Ok(())
        );
    }

    #[test]
    fn an_admin_never_creates_root_or_partner_users() {
        let org = OrganizationId::new();
        let admin = who(SystemRole::Admin, None, Some(org));
        for role in [SystemRole::Root, SystemRole::Partner] {
            assert!(matches!(
                may_create_user(&admin, &role.role(), &Resource::organization(None, org)),
                Err(Denied::RoleAboveCreator { .. })
            ));
        }
    }

    #[test]
    fn users_cannot_create_users() {
        let org = OrganizationId::new();
        let user = who(SystemRole::User, None, Some(org));
        assert!(matches!(
            may_create_user(
                &user,
                &SystemRole::User.role(),
                &Resource::organization(None, org)
            ),
            Err(Denied::CannotCreateUsers { .. })
        ));
    }

    #[test]
    fn placement_must_fit_the_role() {
        let partner_co = PartnerCompanyId::new();
        let root = who(SystemRole::Root, None, None);
        let partner_place = Resource::partner_company(partner_co);
        assert_eq!(
            may_create_user(&root, &SystemRole::Partner.role(), &partner_place),
            Ok(())
        );
        assert!(matches!(
            may_create_user(&root, &SystemRole::Admin.role(), &partner_place),
            Err(Denied::PlacementMismatch { .. })
        ));
        let org_place = Resource::organization(Some(partner_co), OrganizationId::new());
        assert!(matches!(
            may_create_user(&root, &SystemRole::Partner.role(), &org_place),
            Err(Denied::PlacementMismatch { .. })
        ));
        let other_org_role = custom_role(OrganizationId::new(), 6);
        assert!(matches!(
            may_create_user(&root, &other_org_role, &org_place),
            Err(Denied::PlacementMismatch { .. })
        ));
    }

    #[test]
    fn a_partner_creates_users_only_inside_its_partner_company() {
        let mine = PartnerCompanyId::new();
        let partner = who(SystemRole::Partner, Some(mine), None);
        let own_org = Resource::organization(Some(mine), OrganizationId::new());
        assert_eq!(
            may_create_user(&partner, &SystemRole::Admin.role(), &own_org),
            Ok(())
        );
        let foreign = Resource::organization(Some(PartnerCompanyId::new()), OrganizationId::new());
        assert_eq!(
            may_create_user(&partner, &SystemRole::Admin.role(), &foreign),
            Err(Denied::OutOfScope)
        );
    }
}
