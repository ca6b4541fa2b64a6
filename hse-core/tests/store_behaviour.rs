//! The behaviour every [`TenancyStore`] adapter must have, run against
//! `MemoryTenancyStore` and (with the `postgres` feature) `PgTenancyStore`, so the
//! two cannot drift.
//!
//! Each behaviour is an `async fn(&dyn TenancyStore)`; [`behaviours!`]
//! turns the list into one test per adapter. PostgreSQL tests get a fresh
//! database from `#[sqlx::test]` (set `DATABASE_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use hse_core::invitation::{Invitation, InvitationStatus, InvitationTarget};
use hse_core::model::{
    AreaPatch, DevicePatch, EstablishmentPatch, NewArea, NewDevice, NewEstablishment,
    NewOrganization, NewPartnerCompany, NewUser, OrganizationPatch, PartnerCompanyPatch, UserPatch,
};
use hse_core::value::{Email, Metadata, Timezone};
use hse_core::{
    ActionName, AreaId, CoreError, DeviceId, DeviceStatus, EstablishmentId, Hierarchy,
    InvitationId, OrganizationId, Page, PartnerCompanyId, Resource, Role, RoleId, Scope, Secret,
    SecretHash, SystemRole, Target, TenancyStore, User, UserEstablishment, UserId,
};

// ---------------------------------------------------------------- harness

/// One test per behaviour and adapter.
macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&hse_core::memory::MemoryTenancyStore::new()).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[sqlx::test(migrations = false)]
                async fn $name(pool: sqlx::PgPool) {
                    super::$name(&super::pg::store(pool).await).await;
                }
            )*
        }
    };
}

/// Asserts that `$result` is an error matching `$pattern`.
macro_rules! refused {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}

behaviours!(
    partner_companies_are_created_by_root_only,
    partner_companies_are_seen_by_their_own_partner_only,
    partner_company_updates_apply_the_patch_in_scope,
    partner_companies_in_use_are_not_deleted,
    organizations_are_created_under_a_partner_in_scope,
    organizations_are_seen_by_their_partner_and_themselves,
    organization_updates_and_deletes_stay_in_scope,
    deleting_a_tenant_withdraws_its_invitations,
    establishments_are_created_in_an_organization_in_scope,
    a_new_establishment_is_assigned_to_its_creator_in_the_same_step,
    establishments_are_seen_only_when_assigned,
    establishment_updates_and_deletes_stay_in_scope,
    areas_nest_within_one_establishment,
    area_reparenting_never_makes_a_cycle,
    concurrent_reparentings_cannot_close_a_loop,
    areas_are_listed_in_scope_and_by_establishment,
    areas_in_use_are_not_deleted,
    devices_live_in_an_area_of_their_establishment,
    devices_are_read_moved_and_deleted_in_scope,
    device_system_paths_work_without_a_scope,
    users_are_placed_in_scope_with_unique_emails,
    a_custom_role_stays_in_its_organization,
    users_take_the_partner_of_their_organization,
    users_are_seen_by_their_partner_and_organization,
    user_updates_credentials_and_passwords,
    principals_carry_role_and_assignment_permissions,
    custom_roles_are_stored_with_their_grants_in_scope,
    roles_are_created_only_in_scope,
    roles_in_use_and_system_roles_are_not_deleted,
    custom_roles_rank_below_the_system_roles,
    deleting_a_role_withdraws_the_invitations_that_offer_it,
    assignments_stay_within_one_organization,
    assignments_are_listed_only_for_establishments_in_scope,
    invitations_target_something_in_scope,
    invitations_offer_only_roles_of_their_target,
    an_accepted_invitation_creates_the_user_once,
    an_invitation_is_accepted_only_by_the_user_it_offers,
    declined_and_expired_invitations_cannot_be_answered,
    accepting_with_a_taken_email_leaves_the_invitation_open,
    concurrent_acceptances_let_exactly_one_through,
    pagination_cursors_walk_every_item_once,
    locate_places_every_entity_in_the_tree,
    a_duplicate_id_is_already_existing,
    a_duplicate_user_role_or_invitation_is_already_existing,
    reads_and_lists_show_exactly_what_the_scope_contains,
    concurrent_patches_of_one_entity_both_land,
);

// ---------------------------------------------------------------- fixtures

/// Now, at the microsecond precision every adapter keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn root() -> Scope {
    Scope::Platform
}

fn partner_scope(p: PartnerCompanyId) -> Scope {
    Scope::Partner {
        partner_company_id: p,
    }
}

fn org_scope(o: OrganizationId, establishments: &[EstablishmentId]) -> Scope {
    Scope::Organization {
        organization_id: o,
        establishments: establishments.iter().copied().collect(),
    }
}

fn unique_email() -> Email {
    Email::parse(&format!("{}@example.com", uuid::Uuid::now_v7().simple())).unwrap()
}

fn action(name: &str) -> ActionName {
    ActionName::parse(name).unwrap()
}

async fn add_partner(s: &dyn TenancyStore) -> PartnerCompanyId {
    let company = NewPartnerCompany {
        name: "Partner".into(),
        contact_email: Some(unique_email()),
        ..Default::default()
    }
    .build(now())
    .unwrap();
    s.insert_partner_company(&root(), &company).await.unwrap();
    company.id
}

fn new_org(partner: Option<PartnerCompanyId>) -> hse_core::Organization {
    NewOrganization {
        partner_company_id: partner,
        name: "Org".into(),
        industry: "hospitality".into(),
        ..Default::default()
    }
    .build(now())
    .unwrap()
}

async fn add_org(s: &dyn TenancyStore, partner: Option<PartnerCompanyId>) -> OrganizationId {
    let org = new_org(partner);
    s.insert_organization(&root(), &org).await.unwrap();
    org.id
}

fn new_est(org: OrganizationId) -> hse_core::Establishment {
    NewEstablishment {
        organization_id: org,
        name: "Hotel".into(),
        address: "Gran Via 1".into(),
        location: Some(hse_core::value::GeoPoint::new(40.42, -3.70).unwrap()),
        timezone: Timezone::parse("Europe/Madrid").unwrap(),
        metadata: Metadata::parse(serde_json::json!({"stars": 4})).unwrap(),
    }
    .build(now())
    .unwrap()
}

async fn add_est(s: &dyn TenancyStore, org: OrganizationId) -> EstablishmentId {
    let est = new_est(org);
    s.insert_establishment(&root(), &est, None).await.unwrap();
    est.id
}

fn new_area(est: EstablishmentId, parent: Option<AreaId>) -> hse_core::Area {
    NewArea {
        establishment_id: est,
        parent_area_id: parent,
        name: "Room".into(),
        kind: "room".into(),
        floor: Some(1),
        metadata: Metadata::default(),
    }
    .build(now())
    .unwrap()
}

async fn add_area(s: &dyn TenancyStore, est: EstablishmentId, parent: Option<AreaId>) -> AreaId {
    let area = new_area(est, parent);
    s.insert_area(&root(), &area).await.unwrap();
    area.id
}

fn new_device(est: EstablishmentId, area: AreaId) -> hse_core::Device {
    NewDevice {
        area_id: area,
        device_type: "doorlock".into(),
        manufacturer: "Acme".into(),
        model: "L1".into(),
        serial_number: "SN1".into(),
        mac_address: Some(hse_core::value::MacAddress::parse("aa:bb:cc:dd:ee:ff").unwrap()),
        protocol: "hse-tcp".into(),
        metadata: Metadata::default(),
    }
    .build(est, now())
    .unwrap()
}

async fn add_device(s: &dyn TenancyStore, est: EstablishmentId, area: AreaId) -> DeviceId {
    let device = new_device(est, area);
    let secret = Secret::generate().unwrap();
    s.insert_device(&root(), &device, secret.hash())
        .await
        .unwrap();
    device.id
}

/// A user with `role`, in `org` (taking its partner) or else `partner`.
fn new_user(role: RoleId, partner: Option<PartnerCompanyId>, org: Option<OrganizationId>) -> User {
    NewUser {
        email: unique_email(),
        first_name: "Ana".into(),
        last_name: "García".into(),
        role_id: role,
        partner_company_id: if org.is_some() { None } else { partner },
        organization_id: org,
    }
    .build(partner, false, now())
    .unwrap()
}

async fn add_user(
    s: &dyn TenancyStore,
    role: RoleId,
    partner: Option<PartnerCompanyId>,
    org: Option<OrganizationId>,
) -> User {
    let user = new_user(role, partner, org);
    s.insert_user(&root(), &user, Some("hash")).await.unwrap();
    user
}

fn new_role(org: OrganizationId, est: Option<EstablishmentId>, grants: &[&str]) -> Role {
    Role {
        id: RoleId::new(),
        name: "Receptionist".into(),
        description: "Front desk".into(),
        hierarchy: Hierarchy::parse(5).unwrap(),
        organization_id: Some(org),
        establishment_id: est,
        created_by: None,
        permissions: grants.iter().map(|g| action(g)).collect(),
        created_at: now(),
    }
}

async fn add_role(
    s: &dyn TenancyStore,
    org: OrganizationId,
    est: Option<EstablishmentId>,
    grants: &[&str],
) -> Role {
    let role = new_role(org, est, grants);
    s.insert_role(&root(), &role).await.unwrap();
    role
}

fn new_invitation(
    target: InvitationTarget,
    role: RoleId,
    invited_by: UserId,
    expires_at: DateTime<Utc>,
) -> (Invitation, SecretHash) {
    let token = Secret::generate().unwrap().hash();
    let invitation = Invitation {
        id: InvitationId::new(),
        email: unique_email(),
        role_id: role,
        target,
        invited_by,
        token_hash: Some(token),
        status: InvitationStatus::Pending,
        expires_at,
        created_at: now(),
        responded_at: None,
    };
    (invitation, token)
}

/// Stores an invitation, open for a week, from root; returns it and its
/// token's hash.
async fn add_invitation(
    s: &dyn TenancyStore,
    target: InvitationTarget,
    role: RoleId,
    invited_by: UserId,
) -> (Invitation, SecretHash) {
    let (invitation, token) = new_invitation(target, role, invited_by, now() + Duration::days(7));
    s.insert_invitation(&root(), &invitation).await.unwrap();
    (invitation, token)
}

/// Whether the invitation of `token` is still stored.
async fn invitation_kept(s: &dyn TenancyStore, token: SecretHash) -> bool {
    s.invitation_by_token(token).await.unwrap().is_some()
}

/// The user an invitation's acceptance creates.
fn invitee(invitation: &Invitation, partner_of_org: Option<PartnerCompanyId>) -> User {
    let (partner, org) = match invitation.target {
        InvitationTarget::PartnerCompany(p) => (Some(p), None),
        InvitationTarget::Organization(o) => (partner_of_org, Some(o)),
    };
    let mut user = new_user(invitation.role_id, partner, org);
    user.email = invitation.email.clone();
    user.email_verified = true;
    user
}

/// Two partners; p1 runs o1 (establishments e1, e2), p2 runs o2 (e3);
/// `direct` is run by the platform. One area per establishment, an admin
/// of o1 and a root user.
#[derive(Debug)]
struct World {
    p1: PartnerCompanyId,
    p2: PartnerCompanyId,
    o1: OrganizationId,
    o2: OrganizationId,
    direct: OrganizationId,
    e1: EstablishmentId,
    e2: EstablishmentId,
    e3: EstablishmentId,
    a1: AreaId,
    a2: AreaId,
    a3: AreaId,
    admin1: User,
    root_user: User,
}

async fn world(s: &dyn TenancyStore) -> World {
    let (p1, p2) = (add_partner(s).await, add_partner(s).await);
    let (o1, o2) = (add_org(s, Some(p1)).await, add_org(s, Some(p2)).await);
    let direct = add_org(s, None).await;
    let (e1, e2, e3) = (
        add_est(s, o1).await,
        add_est(s, o1).await,
        add_est(s, o2).await,
    );
    let (a1, a2, a3) = (
        add_area(s, e1, None).await,
        add_area(s, e2, None).await,
        add_area(s, e3, None).await,
    );
    let admin1 = add_user(s, SystemRole::Admin.id(), Some(p1), Some(o1)).await;
    let root_user = add_user(s, SystemRole::Root.id(), None, None).await;
    World {
        p1,
        p2,
        o1,
        o2,
        direct,
        e1,
        e2,
        e3,
        a1,
        a2,
        a3,
        admin1,
        root_user,
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> uuid::Uuid) -> BTreeSet<uuid::Uuid> {
    items.iter().map(id).collect()
}

// ------------------------------------------------------- partner companies

async fn partner_companies_are_created_by_root_only(s: &dyn TenancyStore) {
    let w = world(s).await;
    let company = NewPartnerCompany {
        name: "Reseller".into(),
        ..Default::default()
    }
    .build(now())
    .unwrap();
    for scope in [
        partner_scope(w.p1),
        org_scope(w.o1, &[w.e1]),
        Scope::Nothing,
    ] {
        refused!(
            s.insert_partner_company(&scope, &company).await,
            CoreError::NotFound { .. }
        );
    }
    s.insert_partner_company(&root(), &company).await.unwrap();
    assert_eq!(
        s.partner_company(&root(), company.id).await.unwrap(),
        company
    );
}

async fn partner_companies_are_seen_by_their_own_partner_only(s: &dyn TenancyStore) {
    let w = world(s).await;
    let mine = partner_scope(w.p1);
    assert_eq!(s.partner_company(&mine, w.p1).await.unwrap().id, w.p1);
    for (scope, id) in [
        (mine.clone(), w.p2),
        (org_scope(w.o1, &[w.e1, w.e2]), w.p1),
        (Scope::Nothing, w.p1),
        (root(), PartnerCompanyId::new()),
    ] {
        refused!(
            s.partner_company(&scope, id).await,
            CoreError::NotFound { .. }
        );
    }
    let listed = s.list_partner_companies(&mine, Page::first_max()).await;
    assert_eq!(
        ids(&listed.unwrap().items, |p| p.id.0),
        BTreeSet::from([w.p1.0])
    );
    let all = s.list_partner_companies(&root(), Page::first_max()).await;
    assert_eq!(all.unwrap().items.len(), 2);
    let none = s
        .list_partner_companies(&org_scope(w.o1, &[]), Page::first_max())
        .await;
    assert!(none.unwrap().items.is_empty());
}

async fn partner_company_updates_apply_the_patch_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let later = now() + Duration::seconds(5);
    let patch = PartnerCompanyPatch {
        name: Some("Renamed".into()),
        is_active: Some(false),
        ..Default::default()
    };
    refused!(
        s.update_partner_company(&partner_scope(w.p1), w.p2, patch.clone(), later)
            .await,
        CoreError::NotFound { .. }
    );
    let updated = s
        .update_partner_company(&partner_scope(w.p1), w.p1, patch, later)
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.is_active),
        ("Renamed", false)
    );
    assert_eq!(updated.updated_at, later);
    assert_eq!(s.partner_company(&root(), w.p1).await.unwrap(), updated);
    let bad = PartnerCompanyPatch {
        name: Some("  ".into()),
        ..Default::default()
    };
    refused!(
        s.update_partner_company(&root(), w.p1, bad, later).await,
        CoreError::Invalid { field: "name", .. }
    );
    assert_eq!(s.partner_company(&root(), w.p1).await.unwrap(), updated);
}

async fn partner_companies_in_use_are_not_deleted(s: &dyn TenancyStore) {
    let w = world(s).await;
    refused!(
        s.delete_partner_company(&root(), w.p1).await,
        CoreError::InUse { .. }
    );
    let lonely = add_partner(s).await;
    refused!(
        s.delete_partner_company(&partner_scope(w.p1), lonely).await,
        CoreError::NotFound { .. }
    );
    let staff = add_partner(s).await;
    add_user(s, SystemRole::Partner.id(), Some(staff), None).await;
    refused!(
        s.delete_partner_company(&root(), staff).await,
        CoreError::InUse { .. }
    );
    s.delete_partner_company(&root(), lonely).await.unwrap();
    refused!(
        s.partner_company(&root(), lonely).await,
        CoreError::NotFound { .. }
    );
}

// ----------------------------------------------------------- organizations

async fn organizations_are_created_under_a_partner_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let mine = partner_scope(w.p1);
    let org = new_org(Some(w.p1));
    s.insert_organization(&mine, &org).await.unwrap();
    assert_eq!(s.organization(&mine, org.id).await.unwrap(), org);
    for (scope, partner) in [
        (mine.clone(), Some(w.p2)),
        (mine.clone(), None),
        (org_scope(w.o1, &[]), Some(w.p1)),
        (root(), Some(PartnerCompanyId::new())),
    ] {
        refused!(
            s.insert_organization(&scope, &new_org(partner)).await,
            CoreError::NotFound { .. }
        );
    }
    s.insert_organization(&root(), &new_org(None))
        .await
        .unwrap();
}

async fn organizations_are_seen_by_their_partner_and_themselves(s: &dyn TenancyStore) {
    let w = world(s).await;
    let mine = partner_scope(w.p1);
    assert_eq!(s.organization(&mine, w.o1).await.unwrap().id, w.o1);
    for (scope, id) in [
        (mine.clone(), w.o2),
        (mine.clone(), w.direct),
        (org_scope(w.o1, &[]), w.o2),
        (Scope::Nothing, w.o1),
    ] {
        refused!(s.organization(&scope, id).await, CoreError::NotFound { .. });
    }
    let own = s.organization(&org_scope(w.o1, &[]), w.o1).await.unwrap();
    assert_eq!(own.partner_company_id, Some(w.p1));
    let listed = s
        .list_organizations(&mine, Page::first_max())
        .await
        .unwrap();
    assert_eq!(ids(&listed.items, |o| o.id.0), BTreeSet::from([w.o1.0]));
    let all = s
        .list_organizations(&root(), Page::first_max())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
}

async fn organization_updates_and_deletes_stay_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let patch = OrganizationPatch {
        industry: Some("education".into()),
        ..Default::default()
    };
    refused!(
        s.update_organization(&partner_scope(w.p2), w.o1, patch.clone(), now())
            .await,
        CoreError::NotFound { .. }
    );
    let updated = s
        .update_organization(&org_scope(w.o1, &[]), w.o1, patch, now())
        .await
        .unwrap();
    assert_eq!(updated.industry, "education");
    assert_eq!(s.organization(&root(), w.o1).await.unwrap(), updated);
    refused!(
        s.delete_organization(&root(), w.o1).await,
        CoreError::InUse { .. }
    );
    let empty = add_org(s, Some(w.p2)).await;
    refused!(
        s.delete_organization(&partner_scope(w.p1), empty).await,
        CoreError::NotFound { .. }
    );
    s.delete_organization(&partner_scope(w.p2), empty)
        .await
        .unwrap();
    refused!(
        s.organization(&root(), empty).await,
        CoreError::NotFound { .. }
    );
}

async fn deleting_a_tenant_withdraws_its_invitations(s: &dyn TenancyStore) {
    let w = world(s).await;
    let (partner, user) = (SystemRole::Partner.id(), SystemRole::User.id());
    let invite = async |target, role| {
        let (_, token) = add_invitation(s, target, role, w.root_user.id).await;
        token
    };
    let kept = [
        invite(InvitationTarget::PartnerCompany(w.p1), partner).await,
        invite(InvitationTarget::Organization(w.o1), user).await,
    ];
    refused!(
        s.delete_partner_company(&root(), w.p1).await,
        CoreError::InUse { .. }
    );
    refused!(
        s.delete_organization(&root(), w.o1).await,
        CoreError::InUse { .. }
    );
    let (lonely, empty) = (add_partner(s).await, add_org(s, Some(w.p2)).await);
    let withdrawn = [
        invite(InvitationTarget::PartnerCompany(lonely), partner).await,
        invite(InvitationTarget::Organization(empty), user).await,
    ];
    s.delete_partner_company(&root(), lonely).await.unwrap();
    s.delete_organization(&partner_scope(w.p2), empty)
        .await
        .unwrap();
    for token in kept {
        assert!(invitation_kept(s, token).await);
    }
    for token in withdrawn {
        assert!(!invitation_kept(s, token).await);
    }
}

// ---------------------------------------------------------- establishments

async fn establishments_are_created_in_an_organization_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let est = new_est(w.o1);
    refused!(
        s.insert_establishment(&partner_scope(w.p2), &est, None)
            .await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.insert_establishment(&org_scope(w.o2, &[w.e3]), &est, None)
            .await,
        CoreError::NotFound { .. }
    );
    s.insert_establishment(&partner_scope(w.p1), &est, None)
        .await
        .unwrap();
    assert_eq!(s.establishment(&root(), est.id).await.unwrap(), est);
}

async fn a_new_establishment_is_assigned_to_its_creator_in_the_same_step(s: &dyn TenancyStore) {
    let w = world(s).await;
    let est = new_est(w.o1);
    let creator = org_scope(w.o1, &[w.e1]);
    s.insert_establishment(&creator, &est, Some(w.admin1.id))
        .await
        .unwrap();
    let assigned = s.assignments(&root(), w.admin1.id).await.unwrap();
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].establishment_id, est.id);
    assert_eq!(assigned[0].assigned_by, Some(w.admin1.id));
    let principal = s.principal(w.admin1.id).await.unwrap();
    assert!(principal.establishments.contains_key(&est.id));

    let stranger = add_user(s, SystemRole::Admin.id(), Some(w.p2), Some(w.o2)).await;
    let other = new_est(w.o1);
    refused!(
        s.insert_establishment(&root(), &other, Some(stranger.id))
            .await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.establishment(&root(), other.id).await,
        CoreError::NotFound { .. }
    );
}

async fn establishments_are_seen_only_when_assigned(s: &dyn TenancyStore) {
    let w = world(s).await;
    let narrow = org_scope(w.o1, &[w.e1]);
    assert_eq!(s.establishment(&narrow, w.e1).await.unwrap().id, w.e1);
    for (scope, id) in [
        (narrow.clone(), w.e2),
        (narrow.clone(), w.e3),
        (partner_scope(w.p1), w.e3),
        (partner_scope(w.p2), w.e1),
    ] {
        refused!(
            s.establishment(&scope, id).await,
            CoreError::NotFound { .. }
        );
    }
    let page = Page::first_max();
    let seen = s.list_establishments(&narrow, page).await.unwrap();
    assert_eq!(ids(&seen.items, |e| e.id.0), BTreeSet::from([w.e1.0]));
    let partner = s
        .list_establishments(&partner_scope(w.p1), page)
        .await
        .unwrap();
    assert_eq!(
        ids(&partner.items, |e| e.id.0),
        BTreeSet::from([w.e1.0, w.e2.0])
    );
    let nothing = s.list_establishments(&org_scope(w.o1, &[]), page).await;
    assert!(nothing.unwrap().items.is_empty());
}

async fn establishment_updates_and_deletes_stay_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let patch = EstablishmentPatch {
        timezone: Some(Timezone::parse("Atlantic/Canary").unwrap()),
        metadata: Some(Metadata::parse(serde_json::json!({"wing": "B"})).unwrap()),
        ..Default::default()
    };
    refused!(
        s.update_establishment(&org_scope(w.o1, &[w.e1]), w.e2, patch.clone(), now())
            .await,
        CoreError::NotFound { .. }
    );
    let updated = s
        .update_establishment(&org_scope(w.o1, &[w.e2]), w.e2, patch, now())
        .await
        .unwrap();
    assert_eq!(updated.timezone.to_string(), "Atlantic/Canary");
    assert_eq!(s.establishment(&root(), w.e2).await.unwrap(), updated);
    refused!(
        s.delete_establishment(&root(), w.e2).await,
        CoreError::InUse { .. }
    );
    let empty = add_est(s, w.o1).await;
    refused!(
        s.delete_establishment(&org_scope(w.o1, &[w.e1]), empty)
            .await,
        CoreError::NotFound { .. }
    );
    s.delete_establishment(&partner_scope(w.p1), empty)
        .await
        .unwrap();
    refused!(
        s.establishment(&root(), empty).await,
        CoreError::NotFound { .. }
    );
}

// ------------------------------------------------------------------- areas

async fn areas_nest_within_one_establishment(s: &dyn TenancyStore) {
    let w = world(s).await;
    let child = new_area(w.e1, Some(w.a1));
    s.insert_area(&org_scope(w.o1, &[w.e1]), &child)
        .await
        .unwrap();
    assert_eq!(s.area(&root(), child.id).await.unwrap(), child);
    refused!(
        s.insert_area(&root(), &new_area(w.e1, Some(w.a2))).await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.insert_area(&root(), &new_area(w.e1, Some(AreaId::new())))
            .await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.insert_area(&org_scope(w.o1, &[w.e1]), &new_area(w.e2, None))
            .await,
        CoreError::NotFound { .. }
    );
}

async fn area_reparenting_never_makes_a_cycle(s: &dyn TenancyStore) {
    let w = world(s).await;
    let b = add_area(s, w.e1, Some(w.a1)).await;
    let c = add_area(s, w.e1, Some(b)).await;
    let move_to = |parent: Option<AreaId>| AreaPatch {
        parent_area_id: Some(parent),
        ..Default::default()
    };
    for parent in [c, b, w.a1] {
        refused!(
            s.update_area(&root(), w.a1, move_to(Some(parent)), now())
                .await,
            CoreError::Invalid {
                field: "parent_area_id",
                ..
            }
        );
    }
    refused!(
        s.update_area(&root(), c, move_to(Some(w.a2)), now()).await,
        CoreError::NotFound { .. }
    );
    let detached = s.update_area(&root(), c, move_to(None), now()).await;
    assert_eq!(detached.unwrap().parent_area_id, None);
    let moved = s
        .update_area(&root(), w.a1, move_to(Some(c)), now())
        .await
        .unwrap();
    assert_eq!(moved.parent_area_id, Some(c));
    assert_eq!(s.area(&root(), w.a1).await.unwrap(), moved);
}

async fn concurrent_reparentings_cannot_close_a_loop(s: &dyn TenancyStore) {
    let w = world(s).await;
    for _ in 0..5 {
        let x = add_area(s, w.e1, None).await;
        let y = add_area(s, w.e1, None).await;
        let under = |parent: AreaId| AreaPatch {
            parent_area_id: Some(Some(parent)),
            ..Default::default()
        };
        let scope = root();
        let (first, second) = tokio::join!(
            s.update_area(&scope, x, under(y), now()),
            s.update_area(&scope, y, under(x), now()),
        );
        assert!(
            first.is_ok() != second.is_ok(),
            "exactly one move may win: {first:?} / {second:?}"
        );
        let loser = if first.is_ok() { second } else { first };
        refused!(
            loser,
            CoreError::Invalid {
                field: "parent_area_id",
                ..
            }
        );
    }
}

async fn areas_are_listed_in_scope_and_by_establishment(s: &dyn TenancyStore) {
    let w = world(s).await;
    let page = Page::first_max();
    let narrow = org_scope(w.o1, &[w.e1]);
    let seen = s.list_areas(&narrow, None, page).await.unwrap();
    assert_eq!(ids(&seen.items, |a| a.id.0), BTreeSet::from([w.a1.0]));
    refused!(s.area(&narrow, w.a2).await, CoreError::NotFound { .. });
    let of_e2 = s.list_areas(&root(), Some(w.e2), page).await.unwrap();
    assert_eq!(ids(&of_e2.items, |a| a.id.0), BTreeSet::from([w.a2.0]));
    let hidden = s.list_areas(&narrow, Some(w.e2), page).await.unwrap();
    assert!(hidden.items.is_empty());
    let partner = s.list_areas(&partner_scope(w.p2), None, page).await;
    assert_eq!(
        ids(&partner.unwrap().items, |a| a.id.0),
        BTreeSet::from([w.a3.0])
    );
}

async fn areas_in_use_are_not_deleted(s: &dyn TenancyStore) {
    let w = world(s).await;
    let child = add_area(s, w.e1, Some(w.a1)).await;
    refused!(s.delete_area(&root(), w.a1).await, CoreError::InUse { .. });
    let device = add_device(s, w.e1, child).await;
    refused!(s.delete_area(&root(), child).await, CoreError::InUse { .. });
    refused!(
        s.delete_area(&org_scope(w.o1, &[w.e2]), child).await,
        CoreError::NotFound { .. }
    );
    s.delete_device(&root(), device).await.unwrap();
    s.delete_area(&org_scope(w.o1, &[w.e1]), child)
        .await
        .unwrap();
    s.delete_area(&root(), w.a1).await.unwrap();
    refused!(s.area(&root(), w.a1).await, CoreError::NotFound { .. });
}

// ----------------------------------------------------------------- devices

async fn devices_live_in_an_area_of_their_establishment(s: &dyn TenancyStore) {
    let w = world(s).await;
    let device = new_device(w.e1, w.a1);
    let secret = Secret::generate().unwrap();
    s.insert_device(&org_scope(w.o1, &[w.e1]), &device, secret.hash())
        .await
        .unwrap();
    assert_eq!(s.device(&root(), device.id).await.unwrap(), device);
    let stored = s.device_secret_hash(device.id).await.unwrap().unwrap();
    assert!(stored.matches(&secret));
    let hash = Secret::generate().unwrap().hash();
    refused!(
        s.insert_device(&root(), &new_device(w.e1, w.a2), hash)
            .await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.insert_device(&root(), &new_device(w.e3, w.a1), hash)
            .await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.insert_device(&org_scope(w.o1, &[w.e2]), &new_device(w.e1, w.a1), hash)
            .await,
        CoreError::NotFound { .. }
    );
}

async fn devices_are_read_moved_and_deleted_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let device = add_device(s, w.e1, w.a1).await;
    let narrow = org_scope(w.o1, &[w.e1]);
    refused!(
        s.device(&org_scope(w.o1, &[w.e2]), device).await,
        CoreError::NotFound { .. }
    );
    let sibling = add_area(s, w.e1, None).await;
    let moved = s
        .update_device(
            &narrow,
            device,
            DevicePatch {
                area_id: Some(sibling),
                model: Some("L2".into()),
                ..Default::default()
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!((moved.area_id, moved.model.as_str()), (sibling, "L2"));
    assert_eq!(s.device(&narrow, device).await.unwrap(), moved);
    let away = DevicePatch {
        area_id: Some(w.a2),
        ..Default::default()
    };
    refused!(
        s.update_device(&root(), device, away, now()).await,
        CoreError::NotFound { .. }
    );
    let page = Page::first_max();
    let in_sibling = s.list_devices(&root(), Some(sibling), page).await.unwrap();
    assert_eq!(
        ids(&in_sibling.items, |d| d.id.0),
        BTreeSet::from([device.0])
    );
    assert!(
        s.list_devices(&root(), Some(w.a1), page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let hidden = s.list_devices(&partner_scope(w.p2), None, page).await;
    assert!(hidden.unwrap().items.is_empty());
    refused!(
        s.delete_device(&partner_scope(w.p2), device).await,
        CoreError::NotFound { .. }
    );
    s.delete_device(&partner_scope(w.p1), device).await.unwrap();
    refused!(
        s.delete_device(&root(), device).await,
        CoreError::NotFound { .. }
    );
}

async fn device_system_paths_work_without_a_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let device = add_device(s, w.e1, w.a1).await;
    let later = now() + Duration::minutes(1);
    s.set_device_status(device, DeviceStatus::Online, later)
        .await
        .unwrap();
    let seen = s.device(&root(), device).await.unwrap();
    assert_eq!(
        (seen.status, seen.updated_at),
        (DeviceStatus::Online, later)
    );
    refused!(
        s.set_device_status(DeviceId::new(), DeviceStatus::Online, later)
            .await,
        CoreError::NotFound { .. }
    );
    assert!(
        s.device_secret_hash(DeviceId::new())
            .await
            .unwrap()
            .is_none()
    );
}

// ------------------------------------------------------------------- users

async fn users_are_placed_in_scope_with_unique_emails(s: &dyn TenancyStore) {
    let w = world(s).await;
    let user = new_user(SystemRole::User.id(), Some(w.p1), Some(w.o1));
    s.insert_user(&org_scope(w.o1, &[]), &user, None)
        .await
        .unwrap();
    let stored = s.user(&root(), user.id).await.unwrap();
    assert_eq!(stored, user);
    assert_eq!(stored.partner_company_id, Some(w.p1));
    let mut twin = new_user(SystemRole::User.id(), Some(w.p2), Some(w.o2));
    twin.email = user.email.clone();
    refused!(
        s.insert_user(&root(), &twin, None).await,
        CoreError::AlreadyExists { .. }
    );
    for (scope, placed) in [
        (
            org_scope(w.o2, &[]),
            new_user(SystemRole::User.id(), Some(w.p1), Some(w.o1)),
        ),
        (
            partner_scope(w.p2),
            new_user(SystemRole::Partner.id(), Some(w.p1), None),
        ),
        (
            partner_scope(w.p1),
            new_user(SystemRole::Root.id(), None, None),
        ),
        (
            root(),
            new_user(SystemRole::User.id(), None, Some(OrganizationId::new())),
        ),
        (root(), new_user(RoleId::new(), Some(w.p1), Some(w.o1))),
    ] {
        refused!(
            s.insert_user(&scope, &placed, None).await,
            CoreError::NotFound { .. }
        );
    }
    let partner = new_user(SystemRole::Partner.id(), Some(w.p1), None);
    s.insert_user(&partner_scope(w.p1), &partner, None)
        .await
        .unwrap();
    assert_eq!(
        s.user(&partner_scope(w.p1), partner.id).await.unwrap(),
        partner
    );
}

async fn a_custom_role_stays_in_its_organization(s: &dyn TenancyStore) {
    let w = world(s).await;
    let theirs = add_role(s, w.o2, None, &["read_area"]).await;
    refused!(
        s.insert_user(&root(), &new_user(theirs.id, Some(w.p1), Some(w.o1)), None)
            .await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.insert_user(&root(), &new_user(theirs.id, Some(w.p2), None), None)
            .await,
        CoreError::NotFound { .. }
    );
    let ours = add_role(s, w.o1, None, &["read_area"]).await;
    let user = new_user(ours.id, Some(w.p1), Some(w.o1));
    s.insert_user(&root(), &user, None).await.unwrap();
    assert_eq!(s.user(&root(), user.id).await.unwrap().role_id, ours.id);
}

async fn users_take_the_partner_of_their_organization(s: &dyn TenancyStore) {
    let w = world(s).await;
    let role = SystemRole::User.id();
    for (partner, org) in [(w.p2, w.o1), (w.p1, w.direct)] {
        let user = new_user(role, Some(partner), Some(org));
        refused!(
            s.insert_user(&root(), &user, None).await,
            CoreError::Invalid {
                field: "partner_company_id",
                ..
            }
        );
        refused!(s.user(&root(), user.id).await, CoreError::NotFound { .. });
    }
    for partner in [Some(w.p1), None] {
        let user = new_user(role, partner, Some(w.o1));
        s.insert_user(&org_scope(w.o1, &[]), &user, None)
            .await
            .unwrap();
        let stored = s.user(&root(), user.id).await.unwrap();
        assert_eq!(stored.partner_company_id, Some(w.p1));
    }
}

async fn users_are_seen_by_their_partner_and_organization(s: &dyn TenancyStore) {
    let w = world(s).await;
    let partner1 = add_user(s, SystemRole::Partner.id(), Some(w.p1), None).await;
    let partner2 = add_user(s, SystemRole::Partner.id(), Some(w.p2), None).await;
    let user2 = add_user(s, SystemRole::User.id(), Some(w.p2), Some(w.o2)).await;
    let page = Page::first_max();
    let by_p1 = s.list_users(&partner_scope(w.p1), page).await.unwrap();
    assert_eq!(
        ids(&by_p1.items, |u| u.id.0),
        BTreeSet::from([partner1.id.0, w.admin1.id.0])
    );
    let by_o2 = s.list_users(&org_scope(w.o2, &[w.e3]), page).await.unwrap();
    assert_eq!(ids(&by_o2.items, |u| u.id.0), BTreeSet::from([user2.id.0]));
    assert_eq!(s.list_users(&root(), page).await.unwrap().items.len(), 5);
    assert!(
        s.list_users(&Scope::Nothing, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    for (scope, id) in [
        (partner_scope(w.p1), partner2.id),
        (partner_scope(w.p1), user2.id),
        (partner_scope(w.p1), w.root_user.id),
        (org_scope(w.o1, &[w.e1, w.e2]), partner1.id),
        (org_scope(w.o1, &[w.e1, w.e2]), user2.id),
    ] {
        refused!(s.user(&scope, id).await, CoreError::NotFound { .. });
    }
    assert_eq!(
        s.user(&org_scope(w.o1, &[]), w.admin1.id).await.unwrap(),
        w.admin1
    );
}

async fn user_updates_credentials_and_passwords(s: &dyn TenancyStore) {
    let w = world(s).await;
    let patch = UserPatch {
        first_name: Some("Lucía".into()),
        is_active: Some(false),
        ..Default::default()
    };
    refused!(
        s.update_user(&org_scope(w.o2, &[]), w.admin1.id, patch.clone(), now())
            .await,
        CoreError::NotFound { .. }
    );
    let updated = s
        .update_user(&partner_scope(w.p1), w.admin1.id, patch, now())
        .await
        .unwrap();
    assert_eq!(
        (updated.first_name.as_str(), updated.is_active),
        ("Lucía", false)
    );
    let creds = s.credentials(&w.admin1.email).await.unwrap().unwrap();
    assert_eq!(creds.user, updated);
    assert_eq!(creds.password_hash.as_deref(), Some("hash"));
    s.set_password_hash(w.admin1.id, "new-hash", now())
        .await
        .unwrap();
    let creds = s.credentials(&w.admin1.email).await.unwrap().unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("new-hash"));
    refused!(
        s.set_password_hash(UserId::new(), "x", now()).await,
        CoreError::NotFound { .. }
    );
    assert!(s.credentials(&unique_email()).await.unwrap().is_none());
}

async fn principals_carry_role_and_assignment_permissions(s: &dyn TenancyStore) {
    let w = world(s).await;
    let desk = add_role(s, w.o1, Some(w.e1), &["create_booking"]).await;
    let user = add_user(s, SystemRole::User.id(), Some(w.p1), Some(w.o1)).await;
    for (est, role) in [(w.e1, Some(desk.id)), (w.e2, None)] {
        let assignment = UserEstablishment {
            user_id: user.id,
            establishment_id: est,
            role_id: role,
            assigned_at: now(),
            assigned_by: Some(w.admin1.id),
        };
        s.assign_establishment(&root(), &assignment).await.unwrap();
    }
    let principal = s.principal(user.id).await.unwrap();
    assert_eq!(principal.role_id, SystemRole::User.id());
    assert_eq!(principal.hierarchy, SystemRole::User.hierarchy());
    assert_eq!(
        (principal.partner_company_id, principal.organization_id),
        (Some(w.p1), Some(w.o1))
    );
    assert_eq!(
        principal.permissions,
        SystemRole::User.default_permissions()
    );
    assert_eq!(
        principal.establishments[&w.e1],
        BTreeSet::from([action("create_booking")])
    );
    assert!(principal.establishments[&w.e2].is_empty());
    assert_eq!(principal.scope(), org_scope(w.o1, &[w.e1, w.e2]));

    let custom = add_role(s, w.o1, None, &["read_area", "read_device"]).await;
    let clerk = add_user(s, custom.id, Some(w.p1), Some(w.o1)).await;
    let principal = s.principal(clerk.id).await.unwrap();
    assert_eq!(principal.permissions, custom.permissions);
    assert_eq!(principal.hierarchy, custom.hierarchy);

    let off = UserPatch {
        is_active: Some(false),
        ..Default::default()
    };
    s.update_user(&root(), clerk.id, off, now()).await.unwrap();
    refused!(s.principal(clerk.id).await, CoreError::NotFound { .. });
    refused!(s.principal(UserId::new()).await, CoreError::NotFound { .. });
}

// ------------------------------------------------------------------- roles

async fn custom_roles_are_stored_with_their_grants_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let mut role = new_role(w.o1, None, &["read_area", "update_area"]);
    role.created_by = Some(w.admin1.id);
    s.insert_role(&org_scope(w.o1, &[]), &role).await.unwrap();
    for scope in [org_scope(w.o1, &[]), partner_scope(w.p1), root()] {
        assert_eq!(s.role(&scope, role.id).await.unwrap(), role);
    }
    for scope in [org_scope(w.o2, &[]), partner_scope(w.p2), Scope::Nothing] {
        refused!(s.role(&scope, role.id).await, CoreError::NotFound { .. });
        assert_eq!(
            s.role(&scope, SystemRole::Admin.id()).await.unwrap(),
            SystemRole::Admin.role()
        );
    }
    let grants = s.permission_grants(&partner_scope(w.p1), role.id).await;
    let grants = grants.unwrap();
    assert_eq!(grants.len(), 2);
    assert!(grants.iter().all(|g| g.granted_by == Some(w.admin1.id)
        && g.granted_at == role.created_at
        && g.role_id == role.id));
    refused!(
        s.permission_grants(&partner_scope(w.p2), role.id).await,
        CoreError::NotFound { .. }
    );
    let system = s
        .permission_grants(&Scope::Nothing, SystemRole::User.id())
        .await;
    assert_eq!(system.unwrap(), SystemRole::User.grants());

    let listed = s.list_roles(&org_scope(w.o1, &[]), Page::first_max()).await;
    let listed = listed.unwrap().items;
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[4], role);
    let other = s.list_roles(&org_scope(w.o2, &[]), Page::first_max()).await;
    assert_eq!(other.unwrap().items.len(), 4);
}

async fn roles_are_created_only_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let narrowed = new_role(w.o1, Some(w.e2), &["read_area"]);
    refused!(
        s.insert_role(&org_scope(w.o1, &[w.e1]), &narrowed).await,
        CoreError::NotFound { .. }
    );
    s.insert_role(&org_scope(w.o1, &[w.e2]), &narrowed)
        .await
        .unwrap();
    refused!(
        s.role(&org_scope(w.o1, &[w.e1]), narrowed.id).await,
        CoreError::NotFound { .. }
    );
    for (scope, role) in [
        (partner_scope(w.p2), new_role(w.o1, None, &[])),
        (org_scope(w.o2, &[w.e3]), new_role(w.o1, None, &[])),
        (root(), new_role(w.o1, Some(w.e3), &[])),
        (root(), new_role(OrganizationId::new(), None, &[])),
    ] {
        refused!(
            s.insert_role(&scope, &role).await,
            CoreError::NotFound { .. }
        );
    }
    let mut orphan = new_role(w.o1, None, &[]);
    orphan.organization_id = None;
    refused!(
        s.insert_role(&root(), &orphan).await,
        CoreError::Invalid { .. }
    );
}

async fn roles_in_use_and_system_roles_are_not_deleted(s: &dyn TenancyStore) {
    let w = world(s).await;
    let held = add_role(s, w.o1, None, &["read_area"]).await;
    add_user(s, held.id, Some(w.p1), Some(w.o1)).await;
    refused!(
        s.delete_role(&root(), held.id).await,
        CoreError::InUse { .. }
    );
    let extra = add_role(s, w.o1, Some(w.e1), &["create_booking"]).await;
    let assignment = UserEstablishment {
        user_id: w.admin1.id,
        establishment_id: w.e1,
        role_id: Some(extra.id),
        assigned_at: now(),
        assigned_by: None,
    };
    s.assign_establishment(&root(), &assignment).await.unwrap();
    refused!(
        s.delete_role(&root(), extra.id).await,
        CoreError::InUse { .. }
    );
    refused!(
        s.delete_role(&root(), SystemRole::User.id()).await,
        CoreError::Invalid { .. }
    );
    let unused = add_role(s, w.o1, None, &[]).await;
    refused!(
        s.delete_role(&partner_scope(w.p2), unused.id).await,
        CoreError::NotFound { .. }
    );
    s.delete_role(&org_scope(w.o1, &[]), unused.id)
        .await
        .unwrap();
    refused!(s.role(&root(), unused.id).await, CoreError::NotFound { .. });
}

async fn custom_roles_rank_below_the_system_roles(s: &dyn TenancyStore) {
    let w = world(s).await;
    let ranked = |rank: u16| Role {
        hierarchy: Hierarchy::parse(rank).unwrap(),
        ..new_role(w.o1, None, &["read_area"])
    };
    let hierarchy = |result: Result<(), CoreError>| {
        refused!(
            result,
            CoreError::Invalid {
                field: "hierarchy",
                ..
            }
        )
    };
    for rank in [1, 4, 40_000] {
        let role = ranked(rank);
        hierarchy(s.insert_role(&root(), &role).await);
        refused!(s.role(&root(), role.id).await, CoreError::NotFound { .. });
    }
    let posing = Role {
        id: SystemRole::User.id(),
        ..ranked(5)
    };
    hierarchy(s.insert_role(&root(), &posing).await);
    assert_eq!(
        s.role(&root(), posing.id).await.unwrap(),
        SystemRole::User.role()
    );
    for rank in [5, 6, 32_767] {
        let role = ranked(rank);
        s.insert_role(&org_scope(w.o1, &[]), &role).await.unwrap();
        assert_eq!(s.role(&root(), role.id).await.unwrap(), role);
    }
}

async fn deleting_a_role_withdraws_the_invitations_that_offer_it(s: &dyn TenancyStore) {
    let w = world(s).await;
    let to = InvitationTarget::Organization(w.o1);
    let held = add_role(s, w.o1, None, &[]).await;
    add_user(s, held.id, Some(w.p1), Some(w.o1)).await;
    let (_, kept) = add_invitation(s, to, held.id, w.admin1.id).await;
    refused!(
        s.delete_role(&root(), held.id).await,
        CoreError::InUse { .. }
    );
    assert!(invitation_kept(s, kept).await);
    let offered = add_role(s, w.o1, None, &[]).await;
    let (_, withdrawn) = add_invitation(s, to, offered.id, w.admin1.id).await;
    s.delete_role(&org_scope(w.o1, &[]), offered.id)
        .await
        .unwrap();
    assert!(!invitation_kept(s, withdrawn).await);
    assert!(invitation_kept(s, kept).await);
}

// ------------------------------------------------------------- assignments

async fn assignments_stay_within_one_organization(s: &dyn TenancyStore) {
    let w = world(s).await;
    let assign = |est: EstablishmentId, user: UserId, role: Option<RoleId>| UserEstablishment {
        user_id: user,
        establishment_id: est,
        role_id: role,
        assigned_at: now(),
        assigned_by: Some(w.root_user.id),
    };
    let admin = w.admin1.id;
    s.assign_establishment(&root(), &assign(w.e1, admin, None))
        .await
        .unwrap();
    refused!(
        s.assign_establishment(&root(), &assign(w.e3, admin, None))
            .await,
        CoreError::NotFound { .. }
    );
    refused!(
        s.assign_establishment(&org_scope(w.o1, &[w.e1]), &assign(w.e2, admin, None))
            .await,
        CoreError::NotFound { .. }
    );
    let theirs = add_role(s, w.o2, None, &[]).await;
    let narrowed_elsewhere = add_role(s, w.o1, Some(w.e2), &[]).await;
    for role in [theirs.id, narrowed_elsewhere.id, SystemRole::Admin.id()] {
        refused!(
            s.assign_establishment(&root(), &assign(w.e1, admin, Some(role)))
                .await,
            CoreError::NotFound { .. }
        );
    }
    let desk = add_role(s, w.o1, Some(w.e1), &["create_booking"]).await;
    let replaced = assign(w.e1, admin, Some(desk.id));
    s.assign_establishment(&root(), &replaced).await.unwrap();
    assert_eq!(s.assignments(&root(), admin).await.unwrap(), vec![replaced]);
    refused!(
        s.assignments(&partner_scope(w.p2), admin).await,
        CoreError::NotFound { .. }
    );
}

async fn assignments_are_listed_only_for_establishments_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let admin = w.admin1.id;
    for est in [w.e1, w.e2] {
        let assignment = UserEstablishment {
            user_id: admin,
            establishment_id: est,
            role_id: None,
            assigned_at: now(),
            assigned_by: None,
        };
        s.assign_establishment(&root(), &assignment).await.unwrap();
    }
    let establishments = |list: Vec<UserEstablishment>| ids(&list, |a| a.establishment_id.0);
    let narrow = s.assignments(&org_scope(w.o1, &[w.e1]), admin).await;
    assert_eq!(establishments(narrow.unwrap()), BTreeSet::from([w.e1.0]));
    for scope in [root(), partner_scope(w.p1), org_scope(w.o1, &[w.e1, w.e2])] {
        let all = s.assignments(&scope, admin).await.unwrap();
        assert_eq!(establishments(all), BTreeSet::from([w.e1.0, w.e2.0]));
    }
    let none = s.assignments(&org_scope(w.o1, &[]), admin).await;
    assert!(none.unwrap().is_empty());
    refused!(
        s.assignments(&org_scope(w.o2, &[w.e3]), admin).await,
        CoreError::NotFound { .. }
    );
}

// ------------------------------------------------------------- invitations

async fn invitations_target_something_in_scope(s: &dyn TenancyStore) {
    let w = world(s).await;
    let later = now() + Duration::days(7);
    let admin = SystemRole::Admin.id();
    let (inv, token) = new_invitation(
        InvitationTarget::Organization(w.o1),
        admin,
        w.admin1.id,
        later,
    );
    refused!(
        s.insert_invitation(&partner_scope(w.p2), &inv).await,
        CoreError::NotFound { .. }
    );
    let (ghost, _) = new_invitation(
        InvitationTarget::Organization(OrganizationId::new()),
        admin,
        w.admin1.id,
        later,
    );
    refused!(
        s.insert_invitation(&root(), &ghost).await,
        CoreError::NotFound { .. }
    );
    let (no_role, _) = new_invitation(
        InvitationTarget::PartnerCompany(w.p1),
        RoleId::new(),
        w.root_user.id,
        later,
    );
    refused!(
        s.insert_invitation(&root(), &no_role).await,
        CoreError::NotFound { .. }
    );
    let mut tokenless = inv.clone();
    tokenless.token_hash = None;
    refused!(
        s.insert_invitation(&root(), &tokenless).await,
        CoreError::Invalid { .. }
    );
    s.insert_invitation(&partner_scope(w.p1), &inv)
        .await
        .unwrap();
    assert_eq!(s.invitation_by_token(token).await.unwrap(), Some(inv));
    let unknown = Secret::generate().unwrap().hash();
    assert_eq!(s.invitation_by_token(unknown).await.unwrap(), None);
}

async fn invitations_offer_only_roles_of_their_target(s: &dyn TenancyStore) {
    let w = world(s).await;
    let later = now() + Duration::days(7);
    let theirs = add_role(s, w.o2, None, &[]).await;
    let ours = add_role(s, w.o1, None, &[]).await;
    let (org, partner) = (
        InvitationTarget::Organization(w.o1),
        InvitationTarget::PartnerCompany(w.p1),
    );
    for (target, role) in [(org, theirs.id), (partner, ours.id)] {
        let (inv, token) = new_invitation(target, role, w.root_user.id, later);
        refused!(
            s.insert_invitation(&root(), &inv).await,
            CoreError::NotFound { entity: "role" }
        );
        assert!(!invitation_kept(s, token).await);
    }
    for (target, role) in [
        (org, ours.id),
        (org, SystemRole::User.id()),
        (partner, SystemRole::Partner.id()),
    ] {
        let (inv, token) = new_invitation(target, role, w.root_user.id, later);
        s.insert_invitation(&root(), &inv).await.unwrap();
        assert_eq!(s.invitation_by_token(token).await.unwrap(), Some(inv));
    }
}

async fn an_accepted_invitation_creates_the_user_once(s: &dyn TenancyStore) {
    let w = world(s).await;
    let (inv, token) = new_invitation(
        InvitationTarget::Organization(w.o1),
        SystemRole::User.id(),
        w.admin1.id,
        now() + Duration::days(7),
    );
    s.insert_invitation(&root(), &inv).await.unwrap();
    let user = invitee(&inv, Some(w.p1));
    let at = now();
    let created = s.accept_invitation(token, &user, "phc", at).await.unwrap();
    assert_eq!(created, user);
    assert_eq!(created.partner_company_id, Some(w.p1));
    let creds = s.credentials(&inv.email).await.unwrap().unwrap();
    assert_eq!(creds.password_hash.as_deref(), Some("phc"));
    let closed = s.invitation_by_token(token).await.unwrap().unwrap();
    assert_eq!(
        (closed.status, closed.responded_at),
        (InvitationStatus::Accepted, Some(at))
    );
    let again = invitee(&inv, Some(w.p1));
    refused!(
        s.accept_invitation(token, &again, "phc", now()).await,
        CoreError::InvitationClosed { state: "accepted" }
    );
    refused!(
        s.decline_invitation(token, now()).await,
        CoreError::InvitationClosed { state: "accepted" }
    );

    let (to_partner, token) = new_invitation(
        InvitationTarget::PartnerCompany(w.p2),
        SystemRole::Partner.id(),
        w.root_user.id,
        now() + Duration::days(7),
    );
    s.insert_invitation(&root(), &to_partner).await.unwrap();
    let partner = invitee(&to_partner, None);
    let created = s.accept_invitation(token, &partner, "phc", now()).await;
    assert_eq!(created.unwrap().partner_company_id, Some(w.p2));
}

async fn an_invitation_is_accepted_only_by_the_user_it_offers(s: &dyn TenancyStore) {
    let w = world(s).await;
    let to = InvitationTarget::Organization(w.o1);
    let (inv, token) = add_invitation(s, to, SystemRole::User.id(), w.admin1.id).await;
    let fits = invitee(&inv, Some(w.p1));
    let strangers = [
        User {
            email: unique_email(),
            ..fits.clone()
        },
        User {
            role_id: SystemRole::Admin.id(),
            ..fits.clone()
        },
        User {
            organization_id: Some(w.o2),
            partner_company_id: Some(w.p2),
            ..fits.clone()
        },
        User {
            organization_id: None,
            ..fits.clone()
        },
    ];
    for user in strangers {
        refused!(
            s.accept_invitation(token, &user, "phc", now()).await,
            CoreError::Invalid { field: "user", .. }
        );
    }
    let open = s.invitation_by_token(token).await.unwrap().unwrap();
    assert_eq!(open.status, InvitationStatus::Pending);
    assert!(s.credentials(&inv.email).await.unwrap().is_none());
    let created = s.accept_invitation(token, &fits, "phc", now()).await;
    assert_eq!(created.unwrap(), fits);

    let to = InvitationTarget::PartnerCompany(w.p1);
    let partner = SystemRole::Partner.id();
    let (to_partner, token) = add_invitation(s, to, partner, w.root_user.id).await;
    let fits = invitee(&to_partner, None);
    let placed_in_org = User {
        organization_id: Some(w.o1),
        ..fits.clone()
    };
    refused!(
        s.accept_invitation(token, &placed_in_org, "phc", now())
            .await,
        CoreError::Invalid { field: "user", .. }
    );
    s.accept_invitation(token, &fits, "phc", now())
        .await
        .unwrap();
}

async fn declined_and_expired_invitations_cannot_be_answered(s: &dyn TenancyStore) {
    let w = world(s).await;
    let role = SystemRole::User.id();
    let target = InvitationTarget::Organization(w.o1);
    let (inv, token) = new_invitation(target, role, w.admin1.id, now() + Duration::days(7));
    s.insert_invitation(&root(), &inv).await.unwrap();
    let at = now();
    let declined = s.decline_invitation(token, at).await.unwrap();
    assert_eq!(
        (declined.status, declined.responded_at),
        (InvitationStatus::Declined, Some(at))
    );
    assert_eq!(s.invitation_by_token(token).await.unwrap(), Some(declined));
    refused!(
        s.accept_invitation(token, &invitee(&inv, Some(w.p1)), "phc", now())
            .await,
        CoreError::InvitationClosed { state: "declined" }
    );
    refused!(
        s.decline_invitation(token, now()).await,
        CoreError::InvitationClosed { state: "declined" }
    );

    let expires = now() + Duration::hours(1);
    let (old, token) = new_invitation(target, role, w.admin1.id, expires);
    s.insert_invitation(&root(), &old).await.unwrap();
    refused!(
        s.accept_invitation(token, &invitee(&old, Some(w.p1)), "phc", expires)
            .await,
        CoreError::InvitationClosed { state: "expired" }
    );
    refused!(
        s.decline_invitation(token, expires).await,
        CoreError::InvitationClosed { state: "expired" }
    );
    assert!(s.credentials(&old.email).await.unwrap().is_none());
    let unknown = Secret::generate().unwrap().hash();
    refused!(
        s.decline_invitation(unknown, now()).await,
        CoreError::NotFound { .. }
    );
}

async fn accepting_with_a_taken_email_leaves_the_invitation_open(s: &dyn TenancyStore) {
    let w = world(s).await;
    let (mut inv, token) = new_invitation(
        InvitationTarget::Organization(w.o1),
        SystemRole::User.id(),
        w.admin1.id,
        now() + Duration::days(7),
    );
    inv.email = w.admin1.email.clone();
    s.insert_invitation(&root(), &inv).await.unwrap();
    refused!(
        s.accept_invitation(token, &invitee(&inv, Some(w.p1)), "phc", now())
            .await,
        CoreError::AlreadyExists { .. }
    );
    let still = s.invitation_by_token(token).await.unwrap().unwrap();
    assert_eq!(still.status, InvitationStatus::Pending);
    s.decline_invitation(token, now()).await.unwrap();
}

async fn concurrent_acceptances_let_exactly_one_through(s: &dyn TenancyStore) {
    let w = world(s).await;
    let (inv, token) = new_invitation(
        InvitationTarget::Organization(w.o1),
        SystemRole::User.id(),
        w.admin1.id,
        now() + Duration::days(7),
    );
    s.insert_invitation(&root(), &inv).await.unwrap();
    let (first, second) = (invitee(&inv, Some(w.p1)), invitee(&inv, Some(w.p1)));
    let (a, b) = tokio::join!(
        s.accept_invitation(token, &first, "phc", now()),
        s.accept_invitation(token, &second, "phc", now()),
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one may win: {a:?} / {b:?}");
    let loser = if a.is_ok() { b } else { a };
    refused!(loser, CoreError::InvitationClosed { state: "accepted" });
    let users = s.list_users(&org_scope(w.o1, &[]), Page::first_max()).await;
    assert_eq!(users.unwrap().items.len(), 2);
}

// ------------------------------------------------------ pagination, locate

async fn pagination_cursors_walk_every_item_once(s: &dyn TenancyStore) {
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(add_partner(s).await.0);
    }
    created.sort();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = Page::new(Some(2), after).unwrap();
        let listing = s.list_partner_companies(&root(), page).await.unwrap();
        pages += 1;
        assert!(listing.items.len() <= 2);
        seen.extend(listing.items.iter().map(|p| p.id.0));
        match listing.next_cursor {
            Some(cursor) => {
                assert_eq!(Some(&cursor), seen.last());
                after = Some(cursor);
            }
            None => break,
        }
    }
    assert_eq!((seen, pages), (created, 3));

    let o = add_org(s, None).await;
    let e = add_est(s, o).await;
    let mut areas = Vec::new();
    for _ in 0..3 {
        areas.push(add_area(s, e, None).await.0);
    }
    areas.sort();
    let three = Page::new(Some(3), None).unwrap();
    let first = s.list_areas(&root(), Some(e), three).await.unwrap();
    assert_eq!((first.items.len(), first.next_cursor), (3, None));
    let rest = Page::new(Some(3), Some(areas[0])).unwrap();
    let rest = s.list_areas(&root(), Some(e), rest).await.unwrap();
    assert_eq!(
        ids(&rest.items, |a| a.id.0),
        BTreeSet::from([areas[1], areas[2]])
    );
}

async fn locate_places_every_entity_in_the_tree(s: &dyn TenancyStore) {
    let w = world(s).await;
    let device = add_device(s, w.e1, w.a1).await;
    let partner = add_user(s, SystemRole::Partner.id(), Some(w.p2), None).await;
    let role = add_role(s, w.o1, Some(w.e2), &[]).await;
    let org1 = Resource::organization(Some(w.p1), w.o1);
    let cases = [
        (
            Target::PartnerCompany(w.p1),
            Resource::partner_company(w.p1),
        ),
        (Target::Organization(w.o1), org1),
        (
            Target::Organization(w.direct),
            Resource::organization(None, w.direct),
        ),
        (Target::Establishment(w.e1), org1.in_establishment(w.e1)),
        (Target::Area(w.a2), org1.in_establishment(w.e2)),
        (
            Target::Area(w.a3),
            Resource::organization(Some(w.p2), w.o2).in_establishment(w.e3),
        ),
        (Target::Device(device), org1.in_establishment(w.e1)),
        (Target::User(w.admin1.id), org1),
        (Target::User(partner.id), Resource::partner_company(w.p2)),
        (Target::User(w.root_user.id), Resource::platform()),
        (Target::Role(role.id), org1.in_establishment(w.e2)),
        (Target::Role(SystemRole::Admin.id()), Resource::platform()),
    ];
    for (target, expected) in cases {
        assert_eq!(
            s.locate(target).await.unwrap(),
            Some(expected),
            "{target:?}"
        );
    }
    for missing in [
        Target::PartnerCompany(PartnerCompanyId::new()),
        Target::Area(AreaId::new()),
        Target::Device(DeviceId::new()),
        Target::User(UserId::new()),
        Target::Role(RoleId::new()),
    ] {
        assert_eq!(s.locate(missing).await.unwrap(), None);
    }
}

/// Asserts that each insert was refused as an `AlreadyExists` of its entity.
fn already_existing<const N: usize>(refusals: [(&str, Result<(), CoreError>); N]) {
    for (entity, result) in refusals {
        assert!(
            matches!(&result, Err(CoreError::AlreadyExists { entity: e, .. }) if *e == entity),
            "{entity}: {result:?}"
        );
    }
}

async fn a_duplicate_id_is_already_existing(s: &dyn TenancyStore) {
    let w = world(s).await;
    let scope = &root();
    let device = add_device(s, w.e1, w.a1).await;
    let company = s.partner_company(scope, w.p1).await.unwrap();
    let renamed = hse_core::PartnerCompany {
        name: "Twin".into(),
        ..company.clone()
    };
    let org = hse_core::Organization {
        id: w.o1,
        name: "Twin".into(),
        ..new_org(Some(w.p1))
    };
    let est = hse_core::Establishment {
        id: w.e1,
        ..new_est(w.o1)
    };
    let area = hse_core::Area {
        id: w.a1,
        ..new_area(w.e1, None)
    };
    let twin = hse_core::Device {
        id: device,
        ..new_device(w.e1, w.a1)
    };
    let hash = Secret::generate().unwrap().hash();
    already_existing([
        (
            "partner company",
            s.insert_partner_company(scope, &renamed).await,
        ),
        ("organization", s.insert_organization(scope, &org).await),
        (
            "establishment",
            s.insert_establishment(scope, &est, None).await,
        ),
        ("area", s.insert_area(scope, &area).await),
        ("device", s.insert_device(scope, &twin, hash).await),
    ]);
    assert_eq!(s.partner_company(scope, w.p1).await.unwrap(), company);
    assert_eq!(s.organization(scope, w.o1).await.unwrap().name, "Org");
}

async fn a_duplicate_user_role_or_invitation_is_already_existing(s: &dyn TenancyStore) {
    let w = world(s).await;
    let scope = &root();
    let role = add_role(s, w.o1, None, &[]).await;
    let target = InvitationTarget::Organization(w.o1);
    let (inv, token) = add_invitation(s, target, role.id, w.admin1.id).await;
    let another = || new_invitation(target, role.id, w.admin1.id, inv.expires_at).0;
    let user = User {
        id: w.admin1.id,
        ..new_user(SystemRole::User.id(), Some(w.p1), Some(w.o1))
    };
    let twin = Role {
        id: role.id,
        ..new_role(w.o1, None, &["read_area"])
    };
    let same_id = Invitation {
        id: inv.id,
        ..another()
    };
    let same_token = Invitation {
        token_hash: Some(token),
        ..another()
    };
    already_existing([
        ("user", s.insert_user(scope, &user, None).await),
        ("role", s.insert_role(scope, &twin).await),
        ("invitation", s.insert_invitation(scope, &same_id).await),
        ("invitation", s.insert_invitation(scope, &same_token).await),
    ]);
    assert_eq!(s.user(scope, w.admin1.id).await.unwrap(), w.admin1);
    assert_eq!(s.role(scope, role.id).await.unwrap(), role);
    assert_eq!(s.invitation_by_token(token).await.unwrap(), Some(inv));
}

// ------------------------------------------------ PostgreSQL-only checks

#[cfg(feature = "postgres")]
mod pg {
    //! What only the database can show: constraints that hold even when
    //! the Rust layer is bypassed, migrations that re-run cleanly.

    use hse_core::postgres::{PgTenancyStore, migrate};
    use hse_core::store::{EstablishmentStore, OrganizationStore, RoleStore};
    use sqlx::PgPool;

    use super::*;

    /// A store on a freshly migrated test database, connected as the
    /// application role (so row-level security is exercised too).
    pub(super) async fn store(pool: PgPool) -> PgTenancyStore {
        migrate(&pool).await.expect("migrations apply");
        let app = hse_core::postgres::app_pool(&pool, 4)
            .await
            .expect("the application role connects");
        PgTenancyStore::new(app)
    }

    /// The SQLSTATE of a failed raw statement.
    async fn sqlstate(pool: &PgPool, sql: &str, binds: &[uuid::Uuid]) -> String {
        let mut query = sqlx::query(sql);
        for b in binds {
            query = query.bind(*b);
        }
        let err = query.execute(pool).await.expect_err("must be refused");
        let db = err.as_database_error().expect("a database error");
        db.code().expect("a SQLSTATE").into_owned()
    }

    #[sqlx::test(migrations = false)]
    async fn composite_foreign_keys_refuse_cross_tenant_rows_in_raw_sql(pool: PgPool) {
        let s = store(pool.clone()).await;
        let w = world(&s).await;
        let device = "INSERT INTO devices (id, establishment_id, area_id, device_type, protocol, \
                      secret_hash, created_at, updated_at) \
                      VALUES ($1, $2, $3, 'sensor', 'hse-tcp', decode(repeat('00', 32), 'hex'), \
                      now(), now())";
        let code = sqlstate(&pool, device, &[DeviceId::new().0, w.e1.0, w.a2.0]).await;
        assert_eq!(code, "23503", "a device in e1 with an area of e2");
        let area = "INSERT INTO areas (id, establishment_id, parent_area_id, name, type, \
                    created_at, updated_at) VALUES ($1, $2, $3, 'x', 'room', now(), now())";
        let code = sqlstate(&pool, area, &[AreaId::new().0, w.e1.0, w.a3.0]).await;
        assert_eq!(code, "23503", "an area of e1 under an area of e3");
        let assignment = "INSERT INTO user_establishments (user_id, establishment_id, \
                          organization_id, assigned_at) VALUES ($1, $2, $3, now())";
        let binds = [w.admin1.id.0, w.e3.0, w.o1.0];
        assert_eq!(sqlstate(&pool, assignment, &binds).await, "23503");
        let binds = [w.admin1.id.0, w.e3.0, w.o2.0];
        assert_eq!(sqlstate(&pool, assignment, &binds).await, "23503");
        let role = "INSERT INTO roles (id, name, hierarchy, organization_id, establishment_id, \
                    created_at) VALUES ($1, 'x', 5, $2, $3, now())";
        let binds = [RoleId::new().0, w.o1.0, w.e3.0];
        assert_eq!(sqlstate(&pool, role, &binds).await, "23503");
    }

    #[sqlx::test(migrations = false)]
    async fn the_role_trigger_refuses_a_custom_role_of_another_organization(pool: PgPool) {
        let s = store(pool.clone()).await;
        let w = world(&s).await;
        let theirs = add_role(&s, w.o2, None, &[]).await;
        let user = "INSERT INTO users (id, email, first_name, role_id, organization_id, \
                    created_at, updated_at) VALUES ($1, 'x@example.com', 'X', $2, $3, now(), now())";
        let binds = [UserId::new().0, theirs.id.0, w.o1.0];
        assert_eq!(sqlstate(&pool, user, &binds).await, "23503");
        let moved = "UPDATE users SET role_id = $2 WHERE id = $1";
        let binds = [w.admin1.id.0, theirs.id.0];
        assert_eq!(sqlstate(&pool, moved, &binds).await, "23503");
        let relocate = "UPDATE roles SET organization_id = $2 WHERE id = $1";
        let binds = [theirs.id.0, w.o1.0];
        assert_eq!(sqlstate(&pool, relocate, &binds).await, "23514");
    }

    /// PostgreSQL refuses U+0000 in `text` and `jsonb` (SQLSTATE class
    /// `22`): the caller's input is at fault, so the store answers
    /// `Invalid` (not `Storage`), without SQL in the reason, and writes
    /// nothing.
    #[sqlx::test(migrations = false)]
    async fn a_value_postgres_refuses_is_invalid_input_and_writes_nothing(pool: PgPool) {
        let s = store(pool).await;
        let w = world(&s).await;
        let mut org = new_org(Some(w.p1));
        org.name = "Acme\0".into();
        let refused = s.insert_organization(&root(), &org).await;
        refused!(&refused, CoreError::Invalid { field: "value", .. });
        let reason = refused.unwrap_err().to_string();
        assert!(reason.contains("could not be stored"), "{reason}");
        assert!(!reason.contains("INSERT"), "{reason}");
        refused!(
            s.organization(&root(), org.id).await,
            CoreError::NotFound { .. }
        );
        let mut est = new_est(w.o1);
        est.metadata = Metadata::parse(serde_json::json!({"k\u{0}": true})).unwrap();
        refused!(
            s.insert_establishment(&root(), &est, None).await,
            CoreError::Invalid { .. }
        );
        refused!(
            s.establishment(&root(), est.id).await,
            CoreError::NotFound { .. }
        );
        let before = s.establishment(&root(), w.e1).await.unwrap();
        let patch = EstablishmentPatch {
            metadata: Some(Metadata::parse(serde_json::json!({"note": "a\u{0}b"})).unwrap()),
            ..Default::default()
        };
        refused!(
            s.update_establishment(&root(), w.e1, patch, now()).await,
            CoreError::Invalid { .. }
        );
        assert_eq!(s.establishment(&root(), w.e1).await.unwrap(), before);
    }

    #[sqlx::test(migrations = false)]
    async fn migrations_and_the_catalogue_seed_run_twice(pool: PgPool) {
        let s = store(pool.clone()).await;
        migrate(&pool).await.unwrap();
        let actions: i64 = sqlx::query_scalar("SELECT count(*) FROM actions")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(actions as usize, hse_core::action::catalogue().len());
        let roles = s.list_roles(&Scope::Platform, Page::first_max()).await;
        assert_eq!(roles.unwrap().items.len(), 4);
    }
}

// --------------------------------------------- scope agreement, atomicity

/// Whether a scoped read of `target` finds it.
async fn readable(s: &dyn TenancyStore, scope: &Scope, target: Target) -> bool {
    match target {
        Target::PartnerCompany(id) => s.partner_company(scope, id).await.is_ok(),
        Target::Organization(id) => s.organization(scope, id).await.is_ok(),
        Target::Establishment(id) => s.establishment(scope, id).await.is_ok(),
        Target::Area(id) => s.area(scope, id).await.is_ok(),
        Target::Device(id) => s.device(scope, id).await.is_ok(),
        Target::User(id) => s.user(scope, id).await.is_ok(),
        Target::Role(id) => s.role(scope, id).await.is_ok(),
    }
}

/// Everything the scoped lists show, as targets.
async fn listed(s: &dyn TenancyStore, scope: &Scope) -> HashSet<Target> {
    let page = Page::first_max();
    let mut all = HashSet::new();
    let companies = s.list_partner_companies(scope, page).await.unwrap().items;
    all.extend(companies.iter().map(|x| Target::PartnerCompany(x.id)));
    let orgs = s.list_organizations(scope, page).await.unwrap().items;
    all.extend(orgs.iter().map(|x| Target::Organization(x.id)));
    let ests = s.list_establishments(scope, page).await.unwrap().items;
    all.extend(ests.iter().map(|x| Target::Establishment(x.id)));
    let areas = s.list_areas(scope, None, page).await.unwrap().items;
    all.extend(areas.iter().map(|x| Target::Area(x.id)));
    let devices = s.list_devices(scope, None, page).await.unwrap().items;
    all.extend(devices.iter().map(|x| Target::Device(x.id)));
    let users = s.list_users(scope, page).await.unwrap().items;
    all.extend(users.iter().map(|x| Target::User(x.id)));
    let roles = s.list_roles(scope, page).await.unwrap().items;
    all.extend(roles.iter().map(|x| Target::Role(x.id)));
    all
}

async fn reads_and_lists_show_exactly_what_the_scope_contains(s: &dyn TenancyStore) {
    let w = world(s).await;
    let device = add_device(s, w.e3, w.a3).await;
    let partner = add_user(s, SystemRole::Partner.id(), Some(w.p1), None).await;
    let direct_user = add_user(s, SystemRole::User.id(), None, Some(w.direct)).await;
    let narrowed = add_role(s, w.o1, Some(w.e2), &[]).await;
    let wide = add_role(s, w.o2, None, &[]).await;
    let mut targets = vec![
        Target::PartnerCompany(w.p1),
        Target::PartnerCompany(w.p2),
        Target::Organization(w.o1),
        Target::Organization(w.o2),
        Target::Organization(w.direct),
        Target::Establishment(w.e1),
        Target::Establishment(w.e2),
        Target::Establishment(w.e3),
        Target::Area(w.a1),
        Target::Area(w.a2),
        Target::Area(w.a3),
        Target::Device(device),
        Target::User(w.admin1.id),
        Target::User(w.root_user.id),
        Target::User(partner.id),
        Target::User(direct_user.id),
        Target::Role(narrowed.id),
        Target::Role(wide.id),
    ];
    targets.extend(SystemRole::ALL.map(|r| Target::Role(r.id())));
    let scopes = [
        root(),
        partner_scope(w.p1),
        partner_scope(w.p2),
        org_scope(w.o1, &[]),
        org_scope(w.o1, &[w.e1]),
        org_scope(w.o1, &[w.e1, w.e2, w.e3]),
        org_scope(w.o2, &[w.e3]),
        org_scope(w.direct, &[]),
        Scope::Nothing,
    ];
    for scope in scopes {
        let mut expected = HashSet::new();
        for &target in &targets {
            let place = s.locate(target).await.unwrap().unwrap();
            let system = matches!(target, Target::Role(r) if SystemRole::from_id(r).is_some());
            let visible = system || scope.contains(&place);
            assert_eq!(
                readable(s, &scope, target).await,
                visible,
                "{scope:?} reading {target:?}"
            );
            if visible {
                expected.insert(target);
            }
        }
        assert_eq!(listed(s, &scope).await, expected, "{scope:?} listing");
    }
}

async fn concurrent_patches_of_one_entity_both_land(s: &dyn TenancyStore) {
    let w = world(s).await;
    let scope = root();
    let device = add_device(s, w.e1, w.a1).await;
    let model = DevicePatch {
        model: Some("L9".into()),
        ..Default::default()
    };
    let status = DevicePatch {
        status: Some(DeviceStatus::Maintenance),
        ..Default::default()
    };
    let (a, b) = tokio::join!(
        s.update_device(&scope, device, model, now()),
        s.update_device(&scope, device, status, now()),
    );
    a.unwrap();
    b.unwrap();
    let both = s.device(&root(), device).await.unwrap();
    assert_eq!(
        (both.model.as_str(), both.status),
        ("L9", DeviceStatus::Maintenance)
    );
    let name = OrganizationPatch {
        name: Some("Renamed".into()),
        ..Default::default()
    };
    let industry = OrganizationPatch {
        industry: Some("retail".into()),
        ..Default::default()
    };
    let (a, b) = tokio::join!(
        s.update_organization(&scope, w.o1, name, now()),
        s.update_organization(&scope, w.o1, industry, now()),
    );
    a.unwrap();
    b.unwrap();
    let both = s.organization(&root(), w.o1).await.unwrap();
    assert_eq!(
        (both.name.as_str(), both.industry.as_str()),
        ("Renamed", "retail")
    );
}
