//! The visibility property: over random tenant trees, every
//! principal's listings equal the model's allowed set, nothing more and
//! nothing less, on both adapters.
//!
//! The oracle below is written from the tree itself (who belongs where),
//! not from `Scope::contains`, so a wrong scope rule fails it too.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use hse_core::model::{NewArea, NewDevice, NewEstablishment, NewOrganization, NewPartnerCompany};
use hse_core::value::{Metadata, Timezone};
use hse_core::{
    AreaId, DeviceId, EstablishmentId, OrganizationId, Page, PartnerCompanyId, Scope, Secret,
    SystemRole, TenancyStore, UserEstablishment, UserId,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::support::user;

/// One organization: establishments, and its admins and users, each with a
/// bit mask of the establishments assigned to them.
#[derive(Clone, Debug)]
struct OrgSpec {
    establishments: usize,
    admins: Vec<u8>,
    users: Vec<u8>,
}

#[derive(Clone, Debug)]
struct PartnerSpec {
    orgs: Vec<OrgSpec>,
    partner_users: usize,
}

#[derive(Clone, Debug)]
struct TreeSpec {
    partners: Vec<PartnerSpec>,
    direct_orgs: Vec<OrgSpec>,
}

fn org_spec() -> impl Strategy<Value = OrgSpec> {
    (0..=3usize, vec(any::<u8>(), 0..=2), vec(any::<u8>(), 0..=2)).prop_map(
        |(establishments, admins, users)| OrgSpec {
            establishments,
            admins,
            users,
        },
    )
}

fn tree_spec() -> impl Strategy<Value = TreeSpec> {
    let partner =
        (vec(org_spec(), 0..=3), 0..=2usize).prop_map(|(orgs, partner_users)| PartnerSpec {
            orgs,
            partner_users,
        });
    (vec(partner, 0..=3), vec(org_spec(), 0..=2)).prop_map(|(partners, direct_orgs)| TreeSpec {
        partners,
        direct_orgs,
    })
}

/// Who a user is, in terms of the tree.
#[derive(Clone, Debug)]
enum Member {
    Root,
    Partner(usize),
    Org {
        org: usize,
        assigned: BTreeSet<usize>,
    },
}

/// The tree as built, with indexes into these vectors as the oracle's terms.
#[derive(Debug, Default)]
struct Built {
    partners: Vec<PartnerCompanyId>,
    orgs: Vec<(OrganizationId, Option<usize>)>,
    ests: Vec<(EstablishmentId, usize)>,
    areas: Vec<(AreaId, usize)>,
    devices: Vec<(DeviceId, usize)>,
    users: Vec<(UserId, Member)>,
}

async fn build(store: &Arc<dyn TenancyStore>, spec: &TreeSpec) -> Built {
    let mut b = Built::default();
    let (root, _) = user(store, SystemRole::Root, None, None).await;
    b.users.push((root.id, Member::Root));
    for p in &spec.partners {
        let company = NewPartnerCompany {
            name: "P".into(),
            ..Default::default()
        }
        .build(Utc::now())
        .unwrap();
        store
            .insert_partner_company(&Scope::Platform, &company)
            .await
            .unwrap();
        b.partners.push(company.id);
        let pi = b.partners.len() - 1;
        for _ in 0..p.partner_users {
            let (u, _) = user(store, SystemRole::Partner, Some(company.id), None).await;
            b.users.push((u.id, Member::Partner(pi)));
        }
        for o in &p.orgs {
            build_org(store, &mut b, o, Some(pi)).await;
        }
    }
    for o in &spec.direct_orgs {
        build_org(store, &mut b, o, None).await;
    }
    b
}

async fn build_org(
    store: &Arc<dyn TenancyStore>,
    b: &mut Built,
    spec: &OrgSpec,
    partner: Option<usize>,
) {
    let partner_id = partner.map(|i| b.partners[i]);
    let new = NewOrganization {
        partner_company_id: partner_id,
        name: "O".into(),
        ..Default::default()
    };
    let org = new.build(Utc::now()).unwrap();
    store
        .insert_organization(&Scope::Platform, &org)
        .await
        .unwrap();
    b.orgs.push((org.id, partner));
    let oi = b.orgs.len() - 1;
    let mut ests = Vec::new();
    for _ in 0..spec.establishments {
        ests.push(build_establishment(store, b, org.id, oi).await);
    }
    let people = spec
        .admins
        .iter()
        .map(|m| (SystemRole::Admin, *m))
        .chain(spec.users.iter().map(|m| (SystemRole::User, *m)));
    for (role, mask) in people {
        let (u, _) = user(store, role, partner_id, Some(org.id)).await;
        let mut assigned = BTreeSet::new();
        for (bit, (est_id, est_index)) in ests.iter().enumerate() {
            if mask & (1 << bit) != 0 {
                let a = UserEstablishment {
                    user_id: u.id,
                    establishment_id: *est_id,
                    role_id: None,
                    assigned_at: Utc::now(),
                    assigned_by: None,
                };
                store
                    .assign_establishment(&Scope::Platform, &a)
                    .await
                    .unwrap();
                assigned.insert(*est_index);
            }
        }
        b.users.push((u.id, Member::Org { org: oi, assigned }));
    }
}

async fn build_establishment(
    store: &Arc<dyn TenancyStore>,
    b: &mut Built,
    org: OrganizationId,
    oi: usize,
) -> (EstablishmentId, usize) {
    let new = NewEstablishment {
        organization_id: org,
        name: "E".into(),
        address: String::new(),
        location: None,
        timezone: Timezone::parse("UTC").unwrap(),
        metadata: Metadata::default(),
    };
    let est = new.build(Utc::now()).unwrap();
    store
        .insert_establishment(&Scope::Platform, &est, None)
        .await
        .unwrap();
    b.ests.push((est.id, oi));
    let ei = b.ests.len() - 1;
    let new_area = NewArea {
        establishment_id: est.id,
        parent_area_id: None,
        name: "A".into(),
        kind: "room".into(),
        floor: None,
        metadata: Metadata::default(),
    };
    let area = new_area.build(Utc::now()).unwrap();
    store.insert_area(&Scope::Platform, &area).await.unwrap();
    b.areas.push((area.id, ei));
    let new_device = NewDevice {
        area_id: area.id,
        device_type: "sensor".into(),
        manufacturer: String::new(),
        model: String::new(),
        serial_number: String::new(),
        mac_address: None,
        protocol: "hse-tcp".into(),
        metadata: Metadata::default(),
    };
    let device = new_device.build(est.id, Utc::now()).unwrap();
    store
        .insert_device(
            &Scope::Platform,
            &device,
            Secret::generate().unwrap().hash(),
        )
        .await
        .unwrap();
    b.devices.push((device.id, ei));
    (est.id, ei)
}

/// What `member` may see, from the tree alone.
struct Allowed {
    partners: BTreeSet<usize>,
    orgs: BTreeSet<usize>,
    ests: BTreeSet<usize>,
}

fn allowed(b: &Built, member: &Member) -> Allowed {
    let all = |n: usize| (0..n).collect::<BTreeSet<_>>();
    match member {
        Member::Root => Allowed {
            partners: all(b.partners.len()),
            orgs: all(b.orgs.len()),
            ests: all(b.ests.len()),
        },
        Member::Partner(p) => {
            let orgs: BTreeSet<usize> = (0..b.orgs.len())
                .filter(|&o| b.orgs[o].1 == Some(*p))
                .collect();
            let ests = (0..b.ests.len())
                .filter(|&e| orgs.contains(&b.ests[e].1))
                .collect();
            Allowed {
                partners: BTreeSet::from([*p]),
                orgs,
                ests,
            }
        }
        Member::Org { org, assigned } => Allowed {
            partners: BTreeSet::new(),
            orgs: BTreeSet::from([*org]),
            ests: assigned.clone(),
        },
    }
}

fn user_visible(b: &Built, viewer: &Member, other: &Member) -> bool {
    match (viewer, other) {
        (Member::Root, _) => true,
        (Member::Partner(p), Member::Partner(q)) => p == q,
        (Member::Partner(p), Member::Org { org, .. }) => b.orgs[*org].1 == Some(*p),
        (Member::Org { org, .. }, Member::Org { org: other, .. }) => org == other,
        _ => false,
    }
}

fn ids<T: Copy + Ord, I>(items: &[(T, I)], keep: impl Fn(&I) -> bool) -> BTreeSet<T> {
    items
        .iter()
        .filter(|(_, i)| keep(i))
        .map(|(id, _)| *id)
        .collect()
}

async fn check_tree(store: &Arc<dyn TenancyStore>, b: &Built) {
    let page = Page::first_max();
    for (user_id, member) in &b.users {
        let scope = store.principal(*user_id).await.unwrap().scope();
        let a = allowed(b, member);
        let want_partners: BTreeSet<_> = a.partners.iter().map(|&i| b.partners[i]).collect();
        let want_orgs: BTreeSet<_> = a.orgs.iter().map(|&i| b.orgs[i].0).collect();
        let want_ests: BTreeSet<_> = a.ests.iter().map(|&i| b.ests[i].0).collect();
        let want_areas = ids(&b.areas, |e| a.ests.contains(e));
        let want_devices = ids(&b.devices, |e| a.ests.contains(e));
        let want_users = ids(&b.users, |m| user_visible(b, member, m));

        let got_partners: BTreeSet<_> = store
            .list_partner_companies(&scope, page)
            .await
            .unwrap()
            .items
            .iter()
            .map(|x| x.id)
            .collect();
        let got_orgs: BTreeSet<_> = store
            .list_organizations(&scope, page)
            .await
            .unwrap()
            .items
            .iter()
            .map(|x| x.id)
            .collect();
        let got_ests: BTreeSet<_> = store
            .list_establishments(&scope, page)
            .await
            .unwrap()
            .items
            .iter()
            .map(|x| x.id)
            .collect();
        let got_areas: BTreeSet<_> = store
            .list_areas(&scope, None, page)
            .await
            .unwrap()
            .items
            .iter()
            .map(|x| x.id)
            .collect();
        let got_devices: BTreeSet<_> = store
            .list_devices(&scope, None, page)
            .await
            .unwrap()
            .items
            .iter()
            .map(|x| x.id)
            .collect();
        let got_users: BTreeSet<_> = store
            .list_users(&scope, page)
            .await
            .unwrap()
            .items
            .iter()
            .map(|x| x.id)
            .collect();

        assert_eq!(
            got_partners, want_partners,
            "partner companies seen by {member:?}"
        );
        assert_eq!(got_orgs, want_orgs, "organizations seen by {member:?}");
        assert_eq!(got_ests, want_ests, "establishments seen by {member:?}");
        assert_eq!(got_areas, want_areas, "areas seen by {member:?}");
        assert_eq!(got_devices, want_devices, "devices seen by {member:?}");
        assert_eq!(got_users, want_users, "users seen by {member:?}");
    }
}

/// Runs `cases` random trees; `fresh` hands out an empty store each time.
async fn property(cases: u32, mut fresh: impl AsyncFnMut() -> Arc<dyn TenancyStore>) {
    let mut runner = TestRunner::new(Config::with_cases(cases));
    let strategy = tree_spec();
    for _ in 0..cases {
        let spec = strategy
            .new_tree(&mut runner)
            .expect("strategy builds")
            .current();
        let store = fresh().await;
        let built = build(&store, &spec).await;
        check_tree(&store, &built).await;
    }
}

#[tokio::test]
async fn every_principal_sees_exactly_its_allowed_set_in_memory() {
    property(1000, async || crate::support::memory()).await;
}

#[sqlx::test(migrations = false)]
async fn every_principal_sees_exactly_its_allowed_set_in_postgres(pool: sqlx::PgPool) {
    let store = crate::support::postgres(pool.clone()).await;
    property(1000, async || {
        reset(&pool).await;
        store.clone()
    })
    .await;
}

/// Empties the tenant tables between cases (system roles and the
/// catalogue stay).
async fn reset(pool: &sqlx::PgPool) {
    for table in [
        "DELETE FROM invitations",
        "DELETE FROM user_establishments",
        "DELETE FROM devices",
        "DELETE FROM users",
        "DELETE FROM roles WHERE hierarchy >= 5",
        "DELETE FROM areas",
        "DELETE FROM establishments",
        "DELETE FROM organizations",
        "DELETE FROM partner_companies",
    ] {
        sqlx::query(table).execute(pool).await.expect("reset");
    }
}
