//! One behavioural suite for every `AuthStore` adapter: each case runs on
//! the memory store and on PostgreSQL, so they cannot drift.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use hse_auth::model::{KeyUsage, RefreshFamily, RevokeReason, Rotation, TotpEnrollment};
use hse_auth::{ApiKey, ApiKeyId, AuthStore, FamilyId};
use hse_core::{ActionName, OrganizationId, Scope, Secret, SecretHash, UserId};
use tokio::sync::Barrier;

use crate::support::start;

fn hash() -> SecretHash {
    Secret::generate().expect("rng").hash()
}

async fn family(store: &dyn AuthStore, user: UserId, ttl: Duration) -> (FamilyId, SecretHash) {
    let first = hash();
    let family = RefreshFamily {
        id: FamilyId::new(),
        user_id: user,
        created_at: start(),
        expires_at: start() + ttl,
    };
    store.create_family(&family, first).await.expect("family");
    (family.id, first)
}

async fn rotation_spends_the_token_and_stores_its_successor(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let (id, first) = family(&*store, users[0], Duration::days(30)).await;
    let second = hash();
    let now = start() + Duration::minutes(1);
    let rotated = store
        .rotate_refresh(first, second, now, Duration::zero())
        .await
        .unwrap();
    assert_eq!(
        rotated,
        Rotation::Rotated {
            family_id: id,
            user_id: users[0],
            expires_at: start() + Duration::days(30),
        }
    );
    let third = hash();
    assert!(matches!(
        store
            .rotate_refresh(second, third, now, Duration::zero())
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert!(!store.family_revoked(id).await.unwrap());
}

async fn a_spent_token_presented_again_revokes_the_family_and_its_newest_token(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let (id, first) = family(&*store, users[0], Duration::days(30)).await;
    let (second, now) = (hash(), start());
    store
        .rotate_refresh(first, second, now, Duration::zero())
        .await
        .unwrap();
    let replay = store
        .rotate_refresh(first, hash(), now, Duration::zero())
        .await
        .unwrap();
    assert_eq!(
        replay,
        Rotation::Reused {
            family_id: id,
            user_id: users[0]
        }
    );
    assert!(store.family_revoked(id).await.unwrap());
    assert_eq!(
        store
            .rotate_refresh(second, hash(), now, Duration::zero())
            .await
            .unwrap(),
        Rotation::Invalid
    );
}

async fn an_unknown_or_expired_token_is_invalid(store: Arc<dyn AuthStore>, users: Vec<UserId>) {
    assert_eq!(
        store
            .rotate_refresh(hash(), hash(), start(), Duration::zero())
            .await
            .unwrap(),
        Rotation::Invalid
    );
    let (id, first) = family(&*store, users[0], Duration::hours(1)).await;
    let late = start() + Duration::hours(1);
    assert_eq!(
        store
            .rotate_refresh(first, hash(), late, Duration::zero())
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // Expiry is not reuse: the family is not marked revoked by it.
    assert!(!store.family_revoked(id).await.unwrap());
}

async fn logout_and_user_revocation_end_only_the_right_families(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let (a, a_token) = family(&*store, users[0], Duration::days(1)).await;
    let (b, _) = family(&*store, users[0], Duration::days(1)).await;
    let (c, _) = family(&*store, users[0], Duration::days(1)).await;
    let (other, other_token) = family(&*store, users[1], Duration::days(1)).await;
    let now = start();
    let logout = store.revoke_family_of(a_token, RevokeReason::Logout, now);
    assert_eq!(logout.await.unwrap(), Some(a));
    assert_eq!(
        store
            .revoke_family_of(hash(), RevokeReason::Logout, now)
            .await
            .unwrap(),
        None
    );
    let ended = store.revoke_user_families(users[0], RevokeReason::PasswordChange, now);
    assert_eq!(ended.await.unwrap(), 2);
    for id in [a, b, c] {
        assert!(store.family_revoked(id).await.unwrap());
    }
    assert!(!store.family_revoked(other).await.unwrap());
    assert!(matches!(
        store
            .rotate_refresh(other_token, hash(), now, Duration::zero())
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
}

async fn concurrent_rotations_of_one_token_have_exactly_one_winner(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    const RACERS: usize = 8;
    let (id, first) = family(&*store, users[0], Duration::days(1)).await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .rotate_refresh(first, hash(), start(), Duration::zero())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let winners = outcomes
        .iter()
        .filter(|r| matches!(r, Rotation::Rotated { .. }))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|r| matches!(
        r,
        Rotation::Rotated { .. } | Rotation::Reused { .. } | Rotation::Invalid
    )));
    // The losers saw a spent token: reuse, so the family is revoked.
    assert!(store.family_revoked(id).await.unwrap());
}

fn key(creator: UserId) -> ApiKey {
    ApiKey {
        id: ApiKeyId::new(),
        name: "ci".into(),
        created_by: creator,
        scope: Scope::Organization {
            organization_id: OrganizationId::new(),
            establishments: BTreeSet::new(),
        },
        permissions: BTreeSet::from([ActionName::parse("read_device").unwrap()]),
        last_four: "beef".into(),
        secret_hash: Some(hash()),
        created_at: start(),
        expires_at: Some(start() + Duration::days(90)),
        revoked_at: None,
        parent_id: None,
    }
}

fn child_of(parent: &ApiKey) -> ApiKey {
    ApiKey {
        parent_id: Some(parent.id),
        ..key(parent.created_by)
    }
}

async fn revoking_a_key_revokes_its_descendants_and_stops_new_ones(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let root = key(users[0]);
    let child = child_of(&root);
    let grandchild = child_of(&child);
    let other = key(users[0]);
    for k in [&root, &child, &grandchild, &other] {
        store.insert_api_key(k).await.unwrap();
    }
    let ids = |keys: Vec<ApiKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    let below = store.api_key_descendants(root.id).await.unwrap();
    assert_eq!(ids(below), vec![child.id, grandchild.id]);
    assert!(
        store
            .api_key_descendants(other.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.revoke_api_key(root.id, start()).await.unwrap());
    for k in [&root, &child, &grandchild] {
        let stored = store.api_key(k.id).await.unwrap().unwrap();
        assert_eq!(stored.revoked_at, Some(start()), "{:?}", k.id);
    }
    assert!(
        store
            .api_key(other.id)
            .await
            .unwrap()
            .unwrap()
            .is_live(start())
    );
    assert!(!store.revoke_api_key(root.id, start()).await.unwrap());
    // No key is stored under a revoked, unknown or expired parent.
    let mut expired = key(users[0]);
    expired.expires_at = Some(start());
    store.insert_api_key(&expired).await.unwrap();
    let unknown = ApiKey {
        parent_id: Some(ApiKeyId::new()),
        ..key(users[0])
    };
    for orphan in [child_of(&child), unknown, child_of(&expired)] {
        assert!(matches!(
            store.insert_api_key(&orphan).await,
            Err(hse_auth::AuthError::InvalidApiKey)
        ));
        assert_eq!(store.api_key(orphan.id).await.unwrap(), None);
    }
}

async fn keys_minted_while_their_ancestor_is_revoked_end_revoked(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let root = key(users[0]);
    store.insert_api_key(&root).await.unwrap();
    let barrier = Arc::new(Barrier::new(9));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, barrier, root) = (store.clone(), barrier.clone(), root.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut parent = root;
            for _ in 0..4 {
                let child = child_of(&parent);
                if store.insert_api_key(&child).await.is_err() {
                    break;
                }
                parent = child;
            }
        }));
    }
    barrier.wait().await;
    tokio::task::yield_now().await;
    store.revoke_api_key(root.id, start()).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let below = store.api_key_descendants(root.id).await.unwrap();
    assert!(below.iter().all(|k| k.revoked_at.is_some()), "{below:?}");
}

async fn a_replay_within_the_grace_window_is_refused_without_revoking(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let grace = Duration::seconds(10);
    let (id, first) = family(&*store, users[0], Duration::days(1)).await;
    let second = hash();
    store
        .rotate_refresh(first, second, start(), grace)
        .await
        .unwrap();
    let soon = start() + Duration::seconds(5);
    assert_eq!(
        store
            .rotate_refresh(first, hash(), soon, grace)
            .await
            .unwrap(),
        Rotation::Raced { family_id: id }
    );
    assert!(!store.family_revoked(id).await.unwrap());
    let third = hash();
    let rotated = store
        .rotate_refresh(second, third, soon, grace)
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated { .. }));
    let late = start() + Duration::seconds(11);
    assert!(matches!(
        store
            .rotate_refresh(first, hash(), late, grace)
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(store.family_revoked(id).await.unwrap());
}

async fn a_purge_removes_expired_families_and_old_usage_only(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let (short, short_token) = family(&*store, users[0], Duration::hours(1)).await;
    let (long, long_token) = family(&*store, users[0], Duration::days(1)).await;
    let k = key(users[0]);
    store.insert_api_key(&k).await.unwrap();
    let uses: Vec<KeyUsage> = [0, 2]
        .into_iter()
        .map(|days| KeyUsage {
            key_id: k.id,
            route: "GET /".into(),
            status: 200,
            at: start() + Duration::days(days),
        })
        .collect();
    store.insert_usage(&uses).await.unwrap();
    let now = start() + Duration::hours(2);
    let purged = store.purge(now, start() + Duration::days(1)).await.unwrap();
    assert_eq!((purged.families, purged.usage), (1, 1));
    assert!(store.family_revoked(short).await.unwrap()); // unknown now
    let gone = store.revoke_family_of(short_token, RevokeReason::Logout, now);
    assert_eq!(gone.await.unwrap(), None);
    assert!(!store.family_revoked(long).await.unwrap());
    let kept = store.rotate_refresh(long_token, hash(), now, Duration::zero());
    assert!(matches!(kept.await.unwrap(), Rotation::Rotated { .. }));
    assert_eq!(
        store.key_usage(k.id, 10).await.unwrap(),
        vec![uses[1].clone()]
    );
}

async fn api_keys_are_stored_listed_and_revoked_once(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let (k1, k2, other) = (key(users[0]), key(users[0]), key(users[1]));
    for k in [&k1, &k2, &other] {
        store.insert_api_key(k).await.unwrap();
    }
    assert!(matches!(
        store.insert_api_key(&k1).await,
        Err(hse_auth::AuthError::Invalid { field: "id", .. })
    ));
    assert_eq!(store.api_key(k1.id).await.unwrap(), Some(k1.clone()));
    assert_eq!(store.api_key(ApiKeyId::new()).await.unwrap(), None);
    let mine = store.api_keys_created_by(users[0]).await.unwrap();
    assert_eq!(mine, vec![k1.clone(), k2]);
    assert!(store.revoke_api_key(k1.id, start()).await.unwrap());
    assert!(!store.revoke_api_key(k1.id, start()).await.unwrap());
    let revoked = store.api_key(k1.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(start()));
    assert!(!revoked.is_live(start()));
}

async fn usage_batches_are_kept_and_read_newest_first(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let k = key(users[0]);
    store.insert_api_key(&k).await.unwrap();
    let batch: Vec<KeyUsage> = (0..5)
        .map(|i| KeyUsage {
            key_id: k.id,
            route: format!("GET /api/v1/devices/{i}"),
            status: 200 + i,
            at: start() + Duration::seconds(i64::from(i)),
        })
        .collect();
    store.insert_usage(&batch).await.unwrap();
    store.insert_usage(&[]).await.unwrap();
    let read = store.key_usage(k.id, 3).await.unwrap();
    assert_eq!(
        read,
        vec![batch[4].clone(), batch[3].clone(), batch[2].clone()]
    );
}

fn enrollment(user: UserId, byte: u8) -> TotpEnrollment {
    TotpEnrollment {
        user_id: user,
        sealed_secret: vec![byte; 48],
        confirmed_at: None,
        last_step: None,
        created_at: start(),
    }
}

async fn totp_enrollment_is_replaced_only_until_confirmed_and_steps_only_grow(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let user = users[0];
    assert!(store.totp(user).await.unwrap().is_none());
    assert!(store.put_totp(&enrollment(user, 1)).await.unwrap());
    assert!(store.put_totp(&enrollment(user, 2)).await.unwrap());
    assert_eq!(
        store.totp(user).await.unwrap().unwrap().sealed_secret,
        vec![2; 48]
    );
    assert!(store.use_totp_step(user, 100, start()).await.unwrap());
    let confirmed = store.totp(user).await.unwrap().unwrap();
    assert_eq!(
        (confirmed.confirmed_at, confirmed.last_step),
        (Some(start()), Some(100))
    );
    assert!(!store.use_totp_step(user, 100, start()).await.unwrap());
    assert!(!store.use_totp_step(user, 99, start()).await.unwrap());
    assert!(store.use_totp_step(user, 101, start()).await.unwrap());
    assert!(!store.put_totp(&enrollment(user, 3)).await.unwrap());
    store.delete_totp(user).await.unwrap();
    assert!(store.totp(user).await.unwrap().is_none());
    assert!(!store.use_totp_step(users[1], 1, start()).await.unwrap());
}

async fn recovery_codes_are_spent_once_and_replaced_whole(
    store: Arc<dyn AuthStore>,
    users: Vec<UserId>,
) {
    let user = users[0];
    let codes: Vec<SecretHash> = (0..3).map(|_| hash()).collect();
    store
        .replace_recovery_codes(user, &codes, start())
        .await
        .unwrap();
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 3);
    assert!(
        store
            .use_recovery_code(user, codes[0], start())
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(user, codes[0], start())
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(users[1], codes[1], start())
            .await
            .unwrap()
    );
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 2);
    let fresh = vec![hash()];
    store
        .replace_recovery_codes(user, &fresh, Utc::now())
        .await
        .unwrap();
    assert!(
        !store
            .use_recovery_code(user, codes[1], start())
            .await
            .unwrap()
    );
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 1);
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            use std::sync::Arc;
            use hse_auth::MemoryAuthStore;
            use hse_core::UserId;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let users = (0..3).map(|_| UserId::new()).collect();
                    super::$case(Arc::new(MemoryAuthStore::new()), users).await;
                }
            )*
        }
        mod postgres {
            use std::sync::Arc;
            use hse_auth::postgres::PgAuthStore;
            use sqlx::PgPool;
            use crate::support::{migrate, pg_users};
            $(
                #[sqlx::test(migrations = false)]
                async fn $case(pool: PgPool) {
                    migrate(&pool).await;
                    let users = pg_users(&pool, 3).await;
                    let app = hse_core::postgres::app_pool(&pool, 4).await.unwrap();
                    super::$case(Arc::new(PgAuthStore::new(app)), users).await;
                }
            )*
        }
    };
}

suite!(
    rotation_spends_the_token_and_stores_its_successor,
    a_spent_token_presented_again_revokes_the_family_and_its_newest_token,
    an_unknown_or_expired_token_is_invalid,
    logout_and_user_revocation_end_only_the_right_families,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
    a_replay_within_the_grace_window_is_refused_without_revoking,
    a_purge_removes_expired_families_and_old_usage_only,
    api_keys_are_stored_listed_and_revoked_once,
    revoking_a_key_revokes_its_descendants_and_stops_new_ones,
    keys_minted_while_their_ancestor_is_revoked_end_revoked,
    usage_batches_are_kept_and_read_newest_first,
    totp_enrollment_is_replaced_only_until_confirmed_and_steps_only_grow,
    recovery_codes_are_spent_once_and_replaced_whole,
);
