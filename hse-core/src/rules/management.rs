//! Who may manage whom: other users, and the suspension of a tenant.
//!
//! Users belong to a whole organization, but a manager sees only the
//! establishments assigned to it; so managing a user (renaming,
//! deactivating, reactivating, assigning) needs more than seeing them:
//! the user's rank is at or below the manager's, and every establishment
//! the user is assigned to is one of the manager's. A one-establishment
//! admin therefore cannot touch the chief admin who holds two.
//!
//! Suspension (`is_active = false` on a partner company or organization)
//! is decided from above: root suspends partner companies, root or the
//! partner suspends organizations, and no tenant lifts its own.

use std::collections::BTreeSet;

use super::Denied;
use crate::id::EstablishmentId;
use crate::principal::{Principal, Resource, Scope};
use crate::role::Hierarchy;

/// May `manager` manage a user of rank `target` assigned to
/// `establishments` (another user: changing oneself is the caller's rule)?
///
/// The rule, in full: the target ranks at or below the manager (a lower
/// [`Hierarchy`] number is more powerful), and, for a manager inside an
/// organization, every establishment of the target is assigned to the
/// manager too. Root and partners reach every establishment they see, so
/// for them only the rank counts; an equal rank is allowed only within the
/// manager's establishments like any other.
///
/// # Errors
/// [`Denied::RoleAboveCreator`] when the target outranks the manager,
/// [`Denied::EstablishmentsNotHeld`] when it holds an establishment the
/// manager does not, [`Denied::OutOfScope`] for a manager who sees nothing.
pub fn may_manage_user(
    manager: &Principal,
    target: Hierarchy,
    establishments: &BTreeSet<EstablishmentId>,
) -> Result<(), Denied> {
    if target < manager.hierarchy {
        return Err(Denied::RoleAboveCreator {
            creator: manager.hierarchy,
            role: target,
        });
    }
    match manager.scope() {
        Scope::Platform | Scope::Partner { .. } => Ok(()),
        Scope::Organization {
            establishments: mine,
            ..
        } if establishments.is_subset(&mine) => Ok(()),
        Scope::Organization { .. } => Err(Denied::EstablishmentsNotHeld),
        Scope::Nothing => Err(Denied::OutOfScope),
    }
}

/// May `who` suspend or reinstate the tenant at `target` (a partner
/// company's resource, or an organization's)? Only from a level above:
/// root for a partner company; root, or the partner that runs it, for an
/// organization. Check [`super::authorize`] for the update first: this
/// rule assumes the target is in scope.
///
/// # Errors
/// [`Denied::SuspensionFromAbove`] naming the level.
pub fn may_change_suspension(who: &Principal, target: &Resource) -> Result<(), Denied> {
    let scope = who.scope();
    let (level, above) = match target.organization_id {
        Some(_) => (
            "organization",
            match scope {
                Scope::Platform => true,
                Scope::Partner { partner_company_id } => {
                    target.partner_company_id == Some(partner_company_id)
                }
                Scope::Organization { .. } | Scope::Nothing => false,
            },
        ),
        None => ("partner company", scope == Scope::Platform),
    };
    if above {
        Ok(())
    } else {
        Err(Denied::SuspensionFromAbove { level })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::id::{OrganizationId, PartnerCompanyId, UserId};
    use crate::role::SystemRole;

    fn who(
        role: SystemRole,
        partner: Option<PartnerCompanyId>,
        org: Option<OrganizationId>,
        establishments: &[EstablishmentId],
    ) -> Principal {
        Principal {
            user_id: UserId::new(),
            role_id: role.id(),
            hierarchy: role.hierarchy(),
            partner_company_id: partner,
            organization_id: org,
            permissions: role.default_permissions(),
            establishments: establishments
                .iter()
                .map(|e| (*e, BTreeSet::new()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn set(ids: &[EstablishmentId]) -> BTreeSet<EstablishmentId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_one_establishment_admin_cannot_manage_the_admin_holding_two() {
        let org = OrganizationId::new();
        let (a, b) = (EstablishmentId::new(), EstablishmentId::new());
        let narrow = who(SystemRole::Admin, None, Some(org), &[a]);
        let admin = SystemRole::Admin.hierarchy();
        assert_eq!(
            may_manage_user(&narrow, admin, &set(&[a, b])),
            Err(Denied::EstablishmentsNotHeld)
        );
        // The chief admin manages the narrow one, and equals within reach.
        let chief = who(SystemRole::Admin, None, Some(org), &[a, b]);
        assert_eq!(may_manage_user(&chief, admin, &set(&[a])), Ok(()));
        assert_eq!(may_manage_user(&narrow, admin, &set(&[a])), Ok(()));
    }

    #[test]
    fn a_lower_rank_outside_the_managers_establishments_is_refused_too() {
        let org = OrganizationId::new();
        let (a, b) = (EstablishmentId::new(), EstablishmentId::new());
        let narrow = who(SystemRole::Admin, None, Some(org), &[a]);
        let user = SystemRole::User.hierarchy();
        assert_eq!(
            may_manage_user(&narrow, user, &set(&[b])),
            Err(Denied::EstablishmentsNotHeld)
        );
        assert_eq!(may_manage_user(&narrow, user, &set(&[a])), Ok(()));
        assert_eq!(may_manage_user(&narrow, user, &set(&[])), Ok(()));
    }

    #[test]
    fn a_higher_rank_is_refused_whatever_the_establishments() {
        let org = OrganizationId::new();
        let a = EstablishmentId::new();
        let user = who(SystemRole::User, None, Some(org), &[a]);
        assert!(matches!(
            may_manage_user(&user, SystemRole::Admin.hierarchy(), &set(&[a])),
            Err(Denied::RoleAboveCreator { .. })
        ));
        let partner = who(
            SystemRole::Partner,
            Some(PartnerCompanyId::new()),
            None,
            &[],
        );
        assert!(matches!(
            may_manage_user(&partner, SystemRole::Root.hierarchy(), &set(&[])),
            Err(Denied::RoleAboveCreator { .. })
        ));
    }

    #[test]
    fn root_and_partners_reach_every_establishment_they_see() {
        let many = set(&[EstablishmentId::new(), EstablishmentId::new()]);
        let root = who(SystemRole::Root, None, None, &[]);
        let partner = who(
            SystemRole::Partner,
            Some(PartnerCompanyId::new()),
            None,
            &[],
        );
        let admin = SystemRole::Admin.hierarchy();
        assert_eq!(may_manage_user(&root, admin, &many), Ok(()));
        assert_eq!(may_manage_user(&partner, admin, &many), Ok(()));
        let lost = who(SystemRole::Admin, None, None, &[]);
        assert_eq!(
            may_manage_user(&lost, SystemRole::User.hierarchy(), &set(&[])),
            Err(Denied::OutOfScope)
        );
    }

    #[test]
    fn suspension_is_decided_only_from_above() {
        let (p, other) = (PartnerCompanyId::new(), PartnerCompanyId::new());
        let org = OrganizationId::new();
        let org_res = Resource::organization(Some(p), org);
        let company = Resource::partner_company(p);
        let root = who(SystemRole::Root, None, None, &[]);
        let partner = who(SystemRole::Partner, Some(p), None, &[]);
        let admin = who(SystemRole::Admin, Some(p), Some(org), &[]);
        assert_eq!(may_change_suspension(&root, &company), Ok(()));
        assert_eq!(may_change_suspension(&root, &org_res), Ok(()));
        assert_eq!(may_change_suspension(&partner, &org_res), Ok(()));
        assert_eq!(
            may_change_suspension(&partner, &company),
            Err(Denied::SuspensionFromAbove {
                level: "partner company"
            })
        );
        assert_eq!(
            may_change_suspension(&admin, &org_res),
            Err(Denied::SuspensionFromAbove {
                level: "organization"
            })
        );
        let foreign = who(SystemRole::Partner, Some(other), None, &[]);
        assert!(may_change_suspension(&foreign, &org_res).is_err());
        let direct = Resource::organization(None, org);
        assert!(may_change_suspension(&partner, &direct).is_err());
        assert_eq!(may_change_suspension(&root, &direct), Ok(()));
    }

    /// Four establishments to draw assignments from.
    fn pool() -> [EstablishmentId; 4] {
        [
            EstablishmentId::new(),
            EstablishmentId::new(),
            EstablishmentId::new(),
            EstablishmentId::new(),
        ]
    }

    fn pick(pool: &[EstablishmentId; 4], mask: u8) -> Vec<EstablishmentId> {
        (0..4)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| pool[i])
            .collect()
    }

    proptest! {
        /// Inside an organization: allowed exactly when the target ranks at
        /// or below the manager and holds only the manager's establishments.
        #[test]
        fn organization_managers_reach_exactly_lower_or_equal_ranks_within_their_establishments(
            manager_rank in 3u16..9,
            target_rank in 1u16..9,
            mine in 0u8..16,
            theirs in 0u8..16,
        ) {
            let ests = pool();
            let mut manager = who(SystemRole::Admin, None, Some(OrganizationId::new()), &pick(&ests, mine));
            manager.hierarchy = Hierarchy::parse(manager_rank).unwrap();
            let target = Hierarchy::parse(target_rank).unwrap();
            let verdict = may_manage_user(&manager, target, &set(&pick(&ests, theirs)));
            let expected = target_rank >= manager_rank && theirs & !mine == 0;
            prop_assert_eq!(verdict.is_ok(), expected);
        }

        /// Nobody below the platform changes a partner company's
        /// suspension, and only root or its own partner an organization's.
        #[test]
        fn only_a_level_above_changes_a_suspension(
            role in 0usize..4,
            own_partner in any::<bool>(),
            org_target in any::<bool>(),
            partner_of_org in any::<bool>(),
        ) {
            let p = PartnerCompanyId::new();
            let org = OrganizationId::new();
            let role = SystemRole::ALL[role];
            let actor_partner = if own_partner { p } else { PartnerCompanyId::new() };
            let actor = match role {
                SystemRole::Root => who(role, None, None, &[]),
                SystemRole::Partner => who(role, Some(actor_partner), None, &[]),
                _ => who(role, Some(p), Some(org), &[]),
            };
            let target = if org_target {
                Resource::organization(partner_of_org.then_some(p), org)
            } else {
                Resource::partner_company(p)
            };
            let expected = match role {
                SystemRole::Root => true,
                SystemRole::Partner => org_target && partner_of_org && own_partner,
                _ => false,
            };
            prop_assert_eq!(may_change_suspension(&actor, &target).is_ok(), expected);
        }
    }
}
