//! Issue 13 through the service: a suspended tenant's users have no
//! principal and only a level above suspends or reinstates it; a manager
//! reaches only users within its establishments; an invitation tells
//! nothing about accounts outside the inviter's scope, and neither does
//! creating a user directly.

use std::sync::Arc;

use hse_core::invitation::{Acceptance, Invitation, InvitationTarget, NewInvitation};
use hse_core::model::{
    NewArea, NewDevice, NewUser, OrganizationPatch, PartnerCompanyPatch, UserPatch,
};
use hse_core::value::{Email, Metadata};
use hse_core::{
    CoreError, Denied, EstablishmentId, OrganizationId, Principal, Resource, Secret, Suspended,
    SystemRole, Target, Tenancy, TenancyStore, UserCreation,
};

use crate::support::{FakeHasher, new_establishment, organization, partner_company, root, user};

async fn establishment(t: &Tenancy, who: &Principal, org: OrganizationId) -> EstablishmentId {
    let new = new_establishment(org);
    t.create_establishment(who, new).await.unwrap().id
}

fn suspend(active: bool) -> OrganizationPatch {
    OrganizationPatch {
        is_active: Some(active),
        ..OrganizationPatch::default()
    }
}

fn suspend_company(active: bool) -> PartnerCompanyPatch {
    PartnerCompanyPatch {
        is_active: Some(active),
        ..PartnerCompanyPatch::default()
    }
}

fn no_principal(result: Result<Principal, CoreError>) -> bool {
    matches!(result, Err(CoreError::NotFound { .. }))
}

pub(crate) async fn a_suspended_tenant_leaves_everyone_below_without_a_principal(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let p = partner_company(&t, &root).await;
    let org = organization(&t, &root, Some(p)).await;
    let (_, partner) = user(&store, SystemRole::Partner, Some(p), None).await;
    let (_, admin) = user(&store, SystemRole::Admin, Some(p), Some(org)).await;
    let (_, elsewhere) = user(
        &store,
        SystemRole::Admin,
        None,
        Some(organization(&t, &root, None).await),
    )
    .await;

    t.update_organization(&root, org, suspend(false))
        .await
        .unwrap();
    assert!(no_principal(t.principal(admin.user_id).await));
    assert!(t.principal(partner.user_id).await.is_ok());
    t.update_organization(&root, org, suspend(true))
        .await
        .unwrap();
    assert!(t.principal(admin.user_id).await.is_ok());

    t.update_partner_company(&root, p, suspend_company(false))
        .await
        .unwrap();
    assert!(no_principal(t.principal(partner.user_id).await));
    assert!(no_principal(t.principal(admin.user_id).await));
    assert!(t.principal(elsewhere.user_id).await.is_ok());
    t.update_partner_company(&root, p, suspend_company(true))
        .await
        .unwrap();
    assert!(t.principal(partner.user_id).await.is_ok());
    assert!(t.principal(admin.user_id).await.is_ok());
}

pub(crate) async fn only_a_level_above_suspends_or_reinstates_a_tenant(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let p = partner_company(&t, &root).await;
    let org = organization(&t, &root, Some(p)).await;
    let (_, partner) = user(&store, SystemRole::Partner, Some(p), None).await;
    let (_, admin) = user(&store, SystemRole::Admin, Some(p), Some(org)).await;

    let own_org = t.update_organization(&admin, org, suspend(false)).await;
    assert!(matches!(
        own_org,
        Err(CoreError::Denied(Denied::SuspensionFromAbove {
            level: "organization"
        }))
    ));
    let own_company = t
        .update_partner_company(&partner, p, suspend_company(false))
        .await;
    assert!(matches!(
        own_company,
        Err(CoreError::Denied(Denied::SuspensionFromAbove {
            level: "partner company"
        }))
    ));
    assert!(t.organization(&root, org).await.unwrap().is_active);
    assert!(t.partner_company(&root, p).await.unwrap().is_active);
    // Other fields stay theirs to change.
    let renamed = OrganizationPatch {
        name: Some("Hotels SL".into()),
        ..OrganizationPatch::default()
    };
    assert_eq!(
        t.update_organization(&admin, org, renamed)
            .await
            .unwrap()
            .name,
        "Hotels SL"
    );

    // The partner suspends and reinstates its organization; root its company.
    let off = t.update_organization(&partner, org, suspend(false)).await;
    assert!(!off.unwrap().is_active);
    let on = t.update_organization(&partner, org, suspend(true)).await;
    assert!(on.unwrap().is_active);
    let off = t
        .update_partner_company(&root, p, suspend_company(false))
        .await;
    assert!(!off.unwrap().is_active);
}

pub(crate) async fn a_suspension_is_reported_for_everything_placed_below(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let p = partner_company(&t, &root).await;
    let org = organization(&t, &root, Some(p)).await;
    let est = establishment(&t, &root, org).await;
    let area = NewArea {
        establishment_id: est,
        parent_area_id: None,
        name: "Room 101".into(),
        kind: "room".into(),
        floor: None,
        metadata: Metadata::default(),
    };
    let area = t.create_area(&root, area).await.unwrap();
    let lock = NewDevice {
        area_id: area.id,
        device_type: "doorlock".into(),
        manufacturer: String::new(),
        model: String::new(),
        serial_number: "SN-1".into(),
        mac_address: None,
        protocol: "hse-tcp".into(),
        metadata: Metadata::default(),
    };
    let (lock, _) = t.create_device(&root, lock).await.unwrap();
    let placed = t.locate(Target::Device(lock.id)).await.unwrap().unwrap();
    assert_eq!(t.suspension(&placed).await.unwrap(), None);
    t.update_organization(&root, org, suspend(false))
        .await
        .unwrap();
    assert_eq!(
        t.suspension(&placed).await.unwrap(),
        Some(Suspended::Organization(org))
    );
    t.update_partner_company(&root, p, suspend_company(false))
        .await
        .unwrap();
    assert_eq!(
        t.suspension(&placed).await.unwrap(),
        Some(Suspended::PartnerCompany(p))
    );
    assert_eq!(t.suspension(&Resource::platform()).await.unwrap(), None);
}

pub(crate) async fn a_one_establishment_admin_cannot_manage_the_chief_admin(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let org = organization(&t, &root, None).await;
    let (a, b) = (
        establishment(&t, &root, org).await,
        establishment(&t, &root, org).await,
    );
    let (chief, _) = user(&store, SystemRole::Admin, None, Some(org)).await;
    let (narrow, _) = user(&store, SystemRole::Admin, None, Some(org)).await;
    let (clerk, _) = user(&store, SystemRole::User, None, Some(org)).await;
    let (roaming, _) = user(&store, SystemRole::User, None, Some(org)).await;
    for (who, est) in [(chief.id, a), (chief.id, b), (narrow.id, a), (clerk.id, a)] {
        t.assign_establishment(&root, who, est, None).await.unwrap();
    }
    t.assign_establishment(&root, roaming.id, b, None)
        .await
        .unwrap();
    let narrow_p = t.principal(narrow.id).await.unwrap();
    let chief_p = t.principal(chief.id).await.unwrap();

    let rename = || UserPatch {
        first_name: Some("Renamed".into()),
        ..UserPatch::default()
    };
    let deactivate = UserPatch {
        is_active: Some(false),
        ..UserPatch::default()
    };
    for patch in [rename(), deactivate.clone()] {
        assert!(matches!(
            t.update_user(&narrow_p, chief.id, patch).await,
            Err(CoreError::Denied(Denied::EstablishmentsNotHeld))
        ));
    }
    let reassign = t.assign_establishment(&narrow_p, chief.id, a, None).await;
    assert!(matches!(
        reassign,
        Err(CoreError::Denied(Denied::EstablishmentsNotHeld))
    ));
    // A lower rank assigned elsewhere is out of reach too.
    assert!(matches!(
        t.update_user(&narrow_p, roaming.id, rename()).await,
        Err(CoreError::Denied(Denied::EstablishmentsNotHeld))
    ));
    let chief_now = t.user(&root, chief.id).await.unwrap();
    assert!(chief_now.is_active);
    assert_eq!(chief_now.first_name, chief.first_name);

    // Within reach: the narrow admin manages its clerk, and itself; the
    // chief manages the narrow admin (equal rank, within its establishments).
    assert_eq!(
        t.update_user(&narrow_p, clerk.id, rename())
            .await
            .unwrap()
            .first_name,
        "Renamed"
    );
    assert!(t.update_user(&narrow_p, narrow.id, rename()).await.is_ok());
    assert!(
        !t.update_user(&chief_p, narrow.id, deactivate)
            .await
            .unwrap()
            .is_active
    );
}

fn invitation(email: &Email, org: OrganizationId) -> NewInvitation {
    NewInvitation {
        email: email.clone(),
        role_id: SystemRole::User.id(),
        target: InvitationTarget::Organization(org),
    }
}

pub(crate) async fn an_invitation_reveals_no_account_outside_the_inviters_scope(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let (mine, theirs) = (
        organization(&t, &root, None).await,
        organization(&t, &root, None).await,
    );
    let (_, admin) = user(&store, SystemRole::Admin, None, Some(mine)).await;
    let (colleague, _) = user(&store, SystemRole::User, None, Some(mine)).await;
    let (stranger, _) = user(&store, SystemRole::User, None, Some(theirs)).await;
    let root_user = t.user(&root, root.user_id).await.unwrap();
    let fresh = Email::parse("fresh@example.com").unwrap();

    let (fresh_inv, _) = t.invite(&admin, invitation(&fresh, mine)).await.unwrap();
    for taken in [&stranger.email, &root_user.email] {
        let (inv, token) = t.invite(&admin, invitation(taken, mine)).await.unwrap();
        assert_eq!(
            (inv.status, inv.role_id, inv.target, &inv.email),
            (fresh_inv.status, fresh_inv.role_id, fresh_inv.target, taken)
        );
        // Whoever holds the token learns of the clash, without a tenant.
        let answer = Acceptance {
            first_name: "Eve".into(),
            last_name: String::new(),
            password: "a long enough passphrase".into(),
        };
        match t.accept_invitation(&token, answer, &FakeHasher).await {
            Err(CoreError::AlreadyExists {
                entity: "user",
                detail,
            }) => {
                assert!(!detail.contains(taken.as_str()), "{detail}");
            }
            other => panic!("expected a clash, got {other:?}"),
        }
    }
    // Someone the admin can see already: still a clear 409.
    assert!(matches!(
        t.invite(&admin, invitation(&colleague.email, mine)).await,
        Err(CoreError::AlreadyExists { entity: "user", .. })
    ));
}

fn new_user(email: &Email, org: OrganizationId) -> NewUser {
    NewUser {
        email: email.clone(),
        first_name: "Eve".into(),
        last_name: String::new(),
        role_id: SystemRole::User.id(),
        partner_company_id: None,
        organization_id: Some(org),
    }
}

/// The invitation a scoped caller's `create_user` answers with.
fn invited(answer: Result<UserCreation, CoreError>) -> (Invitation, Secret) {
    match answer {
        Ok(UserCreation::Invited { invitation, token }) => (invitation, token),
        other => panic!("expected an invitation, got {other:?}"),
    }
}

pub(crate) async fn direct_creation_reveals_no_account_outside_the_creators_scope(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let (mine, theirs) = (
        organization(&t, &root, None).await,
        organization(&t, &root, None).await,
    );
    let (_, admin) = user(&store, SystemRole::Admin, None, Some(mine)).await;
    let (colleague, _) = user(&store, SystemRole::User, None, Some(mine)).await;
    let (stranger, _) = user(&store, SystemRole::User, None, Some(theirs)).await;
    let root_user = t.user(&root, root.user_id).await.unwrap();
    let fresh = Email::parse("fresh@example.com").unwrap();
    let before = t.user(&root, stranger.id).await.unwrap();

    let (fresh_inv, _) = invited(t.create_user(&admin, new_user(&fresh, mine), None).await);
    for taken in [&stranger.email, &root_user.email] {
        let (inv, _) = invited(t.create_user(&admin, new_user(taken, mine), None).await);
        assert_eq!(
            (inv.status, inv.role_id, inv.target, &inv.email),
            (fresh_inv.status, fresh_inv.role_id, fresh_inv.target, taken)
        );
    }
    // The stranger's account is untouched.
    assert_eq!(t.user(&root, stranger.id).await.unwrap(), before);
    // Someone the admin can see already: a clear 409, as for root.
    for who in [&admin, &root] {
        assert!(matches!(
            t.create_user(who, new_user(&colleague.email, mine), None)
                .await,
            Err(CoreError::AlreadyExists { entity: "user", .. })
        ));
    }
    // A password only from a platform-wide caller, refused before anything.
    let other = Email::parse("other@example.com").unwrap();
    assert!(matches!(
        t.create_user(&admin, new_user(&other, mine), Some("hash"))
            .await,
        Err(CoreError::Invalid {
            field: "password",
            ..
        })
    ));
    assert!(store.credentials(&other).await.unwrap().is_none());
}

on_both_adapters!(
    a_suspended_tenant_leaves_everyone_below_without_a_principal,
    only_a_level_above_suspends_or_reinstates_a_tenant,
    a_suspension_is_reported_for_everything_placed_below,
    a_one_establishment_admin_cannot_manage_the_chief_admin,
    an_invitation_reveals_no_account_outside_the_inviters_scope,
    direct_creation_reveals_no_account_outside_the_creators_scope,
);
