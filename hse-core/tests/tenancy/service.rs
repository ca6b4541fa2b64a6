//! Seed 6.1–6.2 through the service: each rule allowed once and refused
//! once, with the refusal naming what is missing.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use hse_core::clock::ManualClock;
use hse_core::invitation::{Acceptance, InvitationTarget, NewInvitation};
use hse_core::model::{AreaPatch, NewArea, NewDevice, NewOrganization, NewPartnerCompany, NewUser};
use hse_core::role::NewRole;
use hse_core::value::{Email, Metadata};
use hse_core::{
    ActionName, CoreError, Denied, Hierarchy, OrganizationId, Page, PartnerCompanyId, Principal,
    Resource, Scope, Secret, SystemRole, Tenancy, TenancyStore, UserCreation,
};

use crate::support::{FakeHasher, new_establishment, organization, partner_company, root, user};

fn act(name: &str) -> ActionName {
    ActionName::parse(name).unwrap()
}

fn area(est: hse_core::EstablishmentId, parent: Option<hse_core::AreaId>, name: &str) -> NewArea {
    NewArea {
        establishment_id: est,
        parent_area_id: parent,
        name: name.into(),
        kind: "room".into(),
        floor: None,
        metadata: Metadata::default(),
    }
}

pub(crate) async fn only_root_creates_partner_companies(store: Arc<dyn TenancyStore>) {
    let (t, root) = root(&store).await;
    let p = partner_company(&t, &root).await;
    let (_, partner) = user(&store, SystemRole::Partner, Some(p), None).await;
    let err = t
        .create_partner_company(
            &partner,
            NewPartnerCompany {
                name: "X".into(),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(
        err,
        Err(CoreError::Denied(Denied::MissingPermission { action })) if action == act("create_partner_company")
    ));
}

pub(crate) async fn partners_create_organizations_only_in_their_company(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let (mine, theirs) = (
        partner_company(&t, &root).await,
        partner_company(&t, &root).await,
    );
    let (_, partner) = user(&store, SystemRole::Partner, Some(mine), None).await;
    let org = organization(&t, &partner, Some(mine)).await;
    assert_eq!(
        t.organization(&partner, org)
            .await
            .unwrap()
            .partner_company_id,
        Some(mine)
    );
    let foreign = NewOrganization {
        partner_company_id: Some(theirs),
        name: "No".into(),
        ..Default::default()
    };
    assert!(matches!(
        t.create_organization(&partner, foreign).await,
        Err(CoreError::NotFound { .. })
    ));
    let direct = NewOrganization {
        partner_company_id: None,
        name: "No".into(),
        ..Default::default()
    };
    // Platform-direct organizations are outside every partner's scope.
    assert!(matches!(
        t.create_organization(&partner, direct).await,
        Err(CoreError::NotFound { .. })
    ));
}

pub(crate) async fn admins_see_only_the_establishments_assigned_to_them(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let org = organization(&t, &root, None).await;
    let (_, chief) = user(&store, SystemRole::Admin, None, Some(org)).await;
    let (other_user, _) = user(&store, SystemRole::Admin, None, Some(org)).await;
    let est = t
        .create_establishment(&chief, new_establishment(org))
        .await
        .unwrap();
    let chief = t.principal(chief.user_id).await.unwrap();
    assert_eq!(t.establishment(&chief, est.id).await.unwrap().id, est.id);
    let other = t.principal(other_user.id).await.unwrap();
    assert!(matches!(
        t.establishment(&other, est.id).await,
        Err(CoreError::NotFound { .. })
    ));
    assert!(
        t.establishments(&other, Page::first_max())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    t.assign_establishment(&chief, other_user.id, est.id, None)
        .await
        .unwrap();
    let other = t.principal(other_user.id).await.unwrap();
    assert_eq!(t.establishment(&other, est.id).await.unwrap().id, est.id);
}

pub(crate) async fn a_refused_action_names_the_missing_permission(store: Arc<dyn TenancyStore>) {
    let (t, root) = root(&store).await;
    let org = organization(&t, &root, None).await;
    let est = t
        .create_establishment(&root, new_establishment(org))
        .await
        .unwrap();
    let (u, _) = user(&store, SystemRole::User, None, Some(org)).await;
    t.assign_establishment(&root, u.id, est.id, None)
        .await
        .unwrap();
    let plain = t.principal(u.id).await.unwrap();
    assert!(t.establishment(&plain, est.id).await.is_ok());
    let err = t.create_area(&plain, area(est.id, None, "101")).await;
    assert!(matches!(
        err,
        Err(CoreError::Denied(Denied::MissingPermission { action })) if action == act("create_area")
    ));
}

pub(crate) async fn custom_roles_follow_the_creation_rules(store: Arc<dyn TenancyStore>) {
    let (t, root) = root(&store).await;
    let org = organization(&t, &root, None).await;
    let (_, admin) = user(&store, SystemRole::Admin, None, Some(org)).await;
    let (_, plain) = user(&store, SystemRole::User, None, Some(org)).await;
    let new = |perms: &[&str]| NewRole {
        name: "Front desk".into(),
        description: String::new(),
        hierarchy: Hierarchy::parse(5).unwrap(),
        organization_id: org,
        establishment_id: None,
        permissions: perms.iter().map(|p| act(p)).collect(),
    };
    let role = t
        .create_role(&admin, new(&["read_booking", "create_booking"]))
        .await
        .unwrap();
    assert_eq!(role.created_by, Some(admin.user_id));
    let grants = t.permission_grants(&admin, role.id).await.unwrap();
    assert_eq!(grants.len(), 2);
    assert!(grants.iter().all(|g| g.granted_by == Some(admin.user_id)));
    assert!(matches!(
        t.create_role(&plain, new(&[])).await,
        Err(CoreError::Denied(Denied::CannotCreateRoles { .. }))
    ));
    assert!(matches!(
        t.create_role(&admin, new(&["delete_establishment"])).await,
        Err(CoreError::Denied(Denied::ExclusivePermission { .. }))
    ));
    let other_org = organization(&t, &root, None).await;
    let mut foreign = new(&[]);
    foreign.organization_id = other_org;
    assert!(matches!(
        t.create_role(&admin, foreign).await,
        Err(CoreError::NotFound { .. })
    ));
}

pub(crate) async fn users_are_created_only_with_roles_at_or_below_the_creator(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let p = partner_company(&t, &root).await;
    let org = organization(&t, &root, Some(p)).await;
    let (_, admin) = user(&store, SystemRole::Admin, None, Some(org)).await;
    let new = |role: SystemRole, partner, org| NewUser {
        email: Email::parse(&format!("{}@example.com", uuid::Uuid::new_v4())).unwrap(),
        first_name: "Ana".into(),
        last_name: String::new(),
        role_id: role.id(),
        partner_company_id: partner,
        organization_id: org,
    };
    let created = t
        .create_user(&root, new(SystemRole::User, None, Some(org)), None)
        .await
        .unwrap()
        .into_user()
        .expect("root creates at once");
    assert_eq!(created.partner_company_id, Some(p));
    // Below the platform the same request is an invitation to that place.
    match t
        .create_user(&admin, new(SystemRole::User, None, Some(org)), None)
        .await
    {
        Ok(UserCreation::Invited { invitation, .. }) => {
            assert_eq!(invitation.target, InvitationTarget::Organization(org));
            assert_eq!(invitation.role_id, SystemRole::User.id());
        }
        other => panic!("expected an invitation, got {other:?}"),
    }
    let err = t
        .create_user(&admin, new(SystemRole::Partner, Some(p), None), None)
        .await;
    assert!(matches!(
        err,
        Err(CoreError::NotFound { .. }) | Err(CoreError::Denied(Denied::RoleAboveCreator { .. }))
    ));
    let err = t
        .create_user(&admin, new(SystemRole::Root, None, None), None)
        .await;
    assert!(matches!(
        err,
        Err(CoreError::Denied(Denied::RoleAboveCreator { .. }))
    ));
    let (_, plain) = user(&store, SystemRole::User, None, Some(org)).await;
    let err = t
        .create_user(&plain, new(SystemRole::User, None, Some(org)), None)
        .await;
    assert!(matches!(
        err,
        Err(CoreError::Denied(Denied::CannotCreateUsers { .. }))
    ));
    let myself = hse_core::model::UserPatch {
        is_active: Some(false),
        ..Default::default()
    };
    assert!(matches!(
        t.update_user(&admin, admin.user_id, myself).await,
        Err(CoreError::Invalid {
            field: "is_active",
            ..
        })
    ));
    let dup = NewUser {
        email: created.email.clone(),
        ..new(SystemRole::User, None, Some(org))
    };
    assert!(matches!(
        t.create_user(&admin, dup, None).await,
        Err(CoreError::AlreadyExists { .. })
    ));
}

pub(crate) async fn invitations_onboard_once(store: Arc<dyn TenancyStore>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (_, root) = root(&store).await;
    let t = Tenancy::with_clock(store.clone(), clock.clone());
    let p = partner_company(&t, &root).await;
    let invite = |email: &str| NewInvitation {
        email: Email::parse(email).unwrap(),
        role_id: SystemRole::Partner.id(),
        target: InvitationTarget::PartnerCompany(p),
    };
    let missing = NewInvitation {
        target: InvitationTarget::PartnerCompany(PartnerCompanyId::new()),
        ..invite("x@example.com")
    };
    assert!(matches!(
        t.invite(&root, missing).await,
        Err(CoreError::NotFound { .. })
    ));

    let (invitation, token) = t.invite(&root, invite("eva@example.com")).await.unwrap();
    assert!(!format!("{invitation:?}").contains(token.expose()));
    let answer = || Acceptance {
        first_name: "Eva".into(),
        last_name: "Ruiz".into(),
        password: "correct horse battery".into(),
    };
    let short = Acceptance {
        password: "short".into(),
        ..answer()
    };
    assert!(matches!(
        t.accept_invitation(&token, short, &FakeHasher).await,
        Err(CoreError::Password(_))
    ));
    let eva = t
        .accept_invitation(&token, answer(), &FakeHasher)
        .await
        .unwrap();
    assert_eq!(
        (eva.role_id, eva.partner_company_id, eva.email_verified),
        (SystemRole::Partner.id(), Some(p), true)
    );
    let creds = store.credentials(&eva.email).await.unwrap().unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("fake$21"));
    assert!(matches!(
        t.accept_invitation(&token, answer(), &FakeHasher).await,
        Err(CoreError::InvitationClosed { state: "accepted" })
    ));

    let (_, declined) = t.invite(&root, invite("dan@example.com")).await.unwrap();
    t.decline_invitation(&declined).await.unwrap();
    assert!(matches!(
        t.accept_invitation(&declined, answer(), &FakeHasher).await,
        Err(CoreError::InvitationClosed { state: "declined" })
    ));

    let (_, late) = t.invite(&root, invite("lia@example.com")).await.unwrap();
    clock.advance(Duration::days(7));
    assert!(matches!(
        t.accept_invitation(&late, answer(), &FakeHasher).await,
        Err(CoreError::InvitationClosed { state: "expired" })
    ));
    let unknown = Secret::from_presented("not-a-token");
    assert!(matches!(
        t.accept_invitation(&unknown, answer(), &FakeHasher).await,
        Err(CoreError::NotFound { .. })
    ));
}

/// An organization with one establishment and its room 101.
async fn room_101(
    t: &Tenancy,
    root: &Principal,
) -> (OrganizationId, hse_core::Establishment, hse_core::Area) {
    let org = organization(t, root, None).await;
    let est = t
        .create_establishment(root, new_establishment(org))
        .await
        .unwrap();
    let room = t
        .create_area(root, area(est.id, None, "101"))
        .await
        .unwrap();
    (org, est, room)
}

pub(crate) async fn devices_get_a_secret_once_and_stay_in_their_tenant(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let (_, est, room) = room_101(&t, &root).await;
    let (device, secret) = t
        .create_device(&root, doorlock(room.id, "S1"))
        .await
        .unwrap();
    assert_eq!(device.establishment_id, est.id);
    let stored = store.device_secret_hash(device.id).await.unwrap().unwrap();
    assert!(stored.matches(&secret));
    let other_org = organization(&t, &root, None).await;
    let (_, stranger) = user(&store, SystemRole::Admin, None, Some(other_org)).await;
    assert!(matches!(
        t.device(&stranger, device.id).await,
        Err(CoreError::NotFound { .. })
    ));
    assert!(matches!(
        t.delete_device(&stranger, device.id).await,
        Err(CoreError::NotFound { .. })
    ));
    assert!(t.device(&root, device.id).await.is_ok());
}

fn doorlock(area_id: hse_core::AreaId, serial: &str) -> NewDevice {
    NewDevice {
        area_id,
        device_type: "doorlock".into(),
        manufacturer: "Acme".into(),
        model: "L6".into(),
        serial_number: serial.into(),
        mac_address: None,
        protocol: "hse-tcp".into(),
        metadata: Metadata::default(),
    }
}

/// With a placement cache, where a device lives is read once per
/// time-to-live; a change made around the service (the store directly) is
/// seen when it expires, a change through the service (or a clone) at once;
/// without a cache every check reads the store.
pub(crate) async fn placements_are_cached_until_a_write_or_their_ttl(store: Arc<dyn TenancyStore>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (_, root) = root(&store).await;
    let t = Tenancy::with_clock(store.clone(), clock.clone())
        .with_placement_cache(Duration::seconds(1));
    let (org, est, room) = room_101(&t, &root).await;
    let placed = Some(Resource::organization(None, org).in_establishment(est.id));
    let device = |serial: &'static str| {
        let t = t.clone();
        let root = root.clone();
        async move {
            t.create_device(&root, doorlock(room.id, serial))
                .await
                .unwrap()
                .0
                .id
        }
    };
    let target = |id| hse_core::Target::Device(id);

    // Removed around the service: still placed until the answer expires.
    let d1 = device("S1").await;
    assert_eq!(t.locate(target(d1)).await.unwrap(), placed);
    store.delete_device(&Scope::Platform, d1).await.unwrap();
    assert_eq!(
        t.locate(target(d1)).await.unwrap(),
        placed,
        "served from the cache"
    );
    clock.advance(Duration::milliseconds(1000));
    assert_eq!(t.locate(target(d1)).await.unwrap(), None);

    // Removed through a clone of the service: gone at once.
    let d2 = device("S2").await;
    assert_eq!(t.locate(target(d2)).await.unwrap(), placed);
    t.clone().delete_device(&root, d2).await.unwrap();
    assert_eq!(t.locate(target(d2)).await.unwrap(), None);
    assert!(matches!(
        t.authorize(&root, &act("read_device"), target(d2), "device")
            .await,
        Err(CoreError::NotFound { .. })
    ));

    // Without a cache, every check reads the store.
    let uncached = Tenancy::with_clock(store.clone(), clock.clone());
    let d3 = device("S3").await;
    assert_eq!(uncached.locate(target(d3)).await.unwrap(), placed);
    store.delete_device(&Scope::Platform, d3).await.unwrap();
    assert_eq!(uncached.locate(target(d3)).await.unwrap(), None);
}

pub(crate) async fn areas_nest_without_cycles(store: Arc<dyn TenancyStore>) {
    let (t, root) = root(&store).await;
    let org = organization(&t, &root, None).await;
    let est = t
        .create_establishment(&root, new_establishment(org))
        .await
        .unwrap();
    let wing = t
        .create_area(&root, area(est.id, None, "Wing"))
        .await
        .unwrap();
    let floor = t
        .create_area(&root, area(est.id, Some(wing.id), "Floor"))
        .await
        .unwrap();
    let room = t
        .create_area(&root, area(est.id, Some(floor.id), "Room"))
        .await
        .unwrap();
    let cycle = AreaPatch {
        parent_area_id: Some(Some(room.id)),
        ..Default::default()
    };
    assert!(matches!(
        t.update_area(&root, wing.id, cycle).await,
        Err(CoreError::Invalid {
            field: "parent_area_id",
            ..
        })
    ));
    let detach = AreaPatch {
        parent_area_id: Some(None),
        ..Default::default()
    };
    assert_eq!(
        t.update_area(&root, room.id, detach)
            .await
            .unwrap()
            .parent_area_id,
        None
    );
    assert!(matches!(
        t.delete_area(&root, wing.id).await,
        Err(CoreError::InUse { .. })
    ));
    let other = t
        .create_establishment(&root, new_establishment(org))
        .await
        .unwrap();
    assert!(matches!(
        t.create_area(&root, area(other.id, Some(wing.id), "X"))
            .await,
        Err(CoreError::NotFound { .. })
    ));
}

pub(crate) async fn establishment_roles_grant_only_in_their_establishment(
    store: Arc<dyn TenancyStore>,
) {
    let (t, root) = root(&store).await;
    let org = organization(&t, &root, None).await;
    let (here, there) = (
        t.create_establishment(&root, new_establishment(org))
            .await
            .unwrap(),
        t.create_establishment(&root, new_establishment(org))
            .await
            .unwrap(),
    );
    let role = NewRole {
        name: "Reception".into(),
        description: String::new(),
        hierarchy: Hierarchy::parse(5).unwrap(),
        organization_id: org,
        establishment_id: Some(here.id),
        permissions: BTreeSet::from([act("create_booking")]),
    };
    let role = t.create_role(&root, role).await.unwrap();
    let (u, _) = user(&store, SystemRole::User, None, Some(org)).await;
    t.assign_establishment(&root, u.id, here.id, Some(role.id))
        .await
        .unwrap();
    t.assign_establishment(&root, u.id, there.id, None)
        .await
        .unwrap();
    let p = t.principal(u.id).await.unwrap();
    let base = Resource::organization(None, org);
    assert!(
        hse_core::authorize(&p, &act("create_booking"), &base.in_establishment(here.id)).is_ok()
    );
    assert!(
        hse_core::authorize(&p, &act("create_booking"), &base.in_establishment(there.id)).is_err()
    );
    let wrong = t
        .assign_establishment(&root, u.id, there.id, Some(role.id))
        .await;
    assert!(matches!(wrong, Err(CoreError::NotFound { .. })));
}

on_both_adapters!(
    only_root_creates_partner_companies,
    partners_create_organizations_only_in_their_company,
    admins_see_only_the_establishments_assigned_to_them,
    a_refused_action_names_the_missing_permission,
    custom_roles_follow_the_creation_rules,
    users_are_created_only_with_roles_at_or_below_the_creator,
    invitations_onboard_once,
    devices_get_a_secret_once_and_stay_in_their_tenant,
    areas_nest_without_cycles,
    establishment_roles_grant_only_in_their_establishment,
    placements_are_cached_until_a_write_or_their_ttl,
);
