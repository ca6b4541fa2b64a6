//! Keys made with keys (issue 13, items 3 and 4), on memory and on
//! PostgreSQL: a child never outlives nor outreaches its parent, revoking
//! a key revokes what it minted, and a key manages only its descendants,
//! with the permission for each act.

use std::collections::BTreeSet;

use chrono::Duration;
use hse_auth::{AuthError, KeyPrincipal, NewApiKey, SecretString};
use hse_core::{ActionName, Principal};

use crate::support::{Harness, start};

const PASSWORD: &str = "correct horse battery";

fn actions(names: &[&str]) -> BTreeSet<ActionName> {
    names
        .iter()
        .map(|n| ActionName::parse(n).expect("action"))
        .collect()
}

fn new_key(name: &str, permissions: &[&str], expires_in: Option<Duration>) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        permissions: actions(permissions),
        expires_at: expires_in.map(|d| start() + d),
    }
}

/// A key made by `user` signed in, and the principal of a request made with it.
async fn user_key(h: &Harness, user: &Principal, new: NewApiKey) -> (SecretString, KeyPrincipal) {
    let (_, text) = h.auth.create_api_key(user, new).await.expect("user key");
    let kp = h
        .auth
        .authenticate_api_key(text.expose())
        .await
        .expect("key works");
    (text, kp)
}

/// A key minted by the key of `parent`.
async fn child_key(
    h: &Harness,
    parent: &KeyPrincipal,
    new: NewApiKey,
) -> (SecretString, KeyPrincipal) {
    let (_, text) = h.auth.create_api_key(parent, new).await.expect("child key");
    let kp = h
        .auth
        .authenticate_api_key(text.expose())
        .await
        .expect("child works");
    (text, kp)
}

const MANAGER: &[&str] = &[
    "create_api_key",
    "read_api_key",
    "delete_api_key",
    "read_booking",
];

async fn a_child_key_never_outlives_nor_outreaches_its_parent(h: Harness) {
    let user = h.user("pa@example.com", PASSWORD).await;
    let ten_minutes = Some(Duration::minutes(10));
    let (_, parent) = user_key(&h, &user, new_key("parent", MANAGER, ten_minutes)).await;
    // No expiry, or a later one, is refused: never clamped silently.
    for later in [None, Some(Duration::hours(1)), Some(Duration::minutes(11))] {
        let refused = h
            .auth
            .create_api_key(&parent, new_key("child", &["read_booking"], later))
            .await;
        assert!(
            matches!(
                refused,
                Err(AuthError::Invalid {
                    field: "expires_at",
                    ..
                })
            ),
            "{later:?}: {refused:?}"
        );
    }
    // A permission the user holds but the parent key does not is refused.
    assert!(
        user.permissions
            .contains(&actions(&["read_device"]).pop_first().unwrap())
    );
    let wider = h
        .auth
        .create_api_key(
            &parent,
            new_key("child", &["read_device"], Some(Duration::minutes(5))),
        )
        .await;
    assert!(
        matches!(wider, Err(AuthError::Forbidden { .. })),
        "{wider:?}"
    );
    // Within both bounds it works, and records its parent.
    let (child, text) = h
        .auth
        .create_api_key(&parent, new_key("child", &["read_booking"], ten_minutes))
        .await
        .unwrap();
    assert_eq!(child.parent_id, Some(parent.key_id));
    assert_eq!(child.expires_at, Some(start() + Duration::minutes(10)));
    let stored = h.store.api_key(child.id).await.unwrap().unwrap();
    assert_eq!(stored.parent_id, Some(parent.key_id));
    // Both end together.
    h.clock.advance(Duration::minutes(10));
    assert!(h.auth.authenticate_api_key(text.expose()).await.is_err());
    // A user's own key has no parent and no bound but its own.
    let (own, _) = h
        .auth
        .create_api_key(&user, new_key("own", &["read_device"], None))
        .await
        .unwrap();
    assert_eq!(own.parent_id, None);
}

async fn revoking_a_key_revokes_every_key_minted_from_it(h: Harness) {
    let user = h.user("re@example.com", PASSWORD).await;
    let (parent_text, parent) = user_key(&h, &user, new_key("parent", MANAGER, None)).await;
    let (child_text, child) = child_key(&h, &parent, new_key("child", MANAGER, None)).await;
    let (grandchild_text, _) =
        child_key(&h, &child, new_key("grandchild", &["read_booking"], None)).await;
    let (sibling_text, _) = user_key(&h, &user, new_key("sibling", MANAGER, None)).await;
    h.auth.revoke_api_key(&user, parent.key_id).await.unwrap();
    for text in [&parent_text, &child_text, &grandchild_text] {
        assert!(matches!(
            h.auth.authenticate_api_key(text.expose()).await,
            Err(AuthError::InvalidApiKey)
        ));
    }
    assert!(
        h.auth
            .authenticate_api_key(sibling_text.expose())
            .await
            .is_ok()
    );
    // A revoked key mints nothing, even holding a principal from before.
    let late = h
        .auth
        .create_api_key(&child, new_key("late", &["read_booking"], None))
        .await;
    assert!(matches!(late, Err(AuthError::InvalidApiKey)), "{late:?}");
    let listed = h.auth.list_api_keys(&user).await.unwrap();
    assert_eq!(listed.iter().filter(|k| k.revoked_at.is_some()).count(), 3);
}

async fn a_key_manages_only_the_keys_minted_from_it(h: Harness) {
    let user = h.user("mg@example.com", PASSWORD).await;
    let (_, reader) = user_key(&h, &user, new_key("reader", &["read_booking"], None)).await;
    let (sibling_text, sibling) = user_key(&h, &user, new_key("sibling", MANAGER, None)).await;
    let (_, manager) = user_key(&h, &user, new_key("manager", MANAGER, None)).await;
    // Without the key-management permissions: refused whatever the target.
    assert!(matches!(
        h.auth.list_api_keys(&reader).await,
        Err(AuthError::Forbidden { .. })
    ));
    assert!(matches!(
        h.auth.revoke_api_key(&reader, sibling.key_id).await,
        Err(AuthError::Forbidden { .. })
    ));
    assert!(matches!(
        h.auth
            .create_api_key(&reader, new_key("x", &["read_booking"], None))
            .await,
        Err(AuthError::Forbidden { .. })
    ));
    // With them: only its descendants, and a sibling is not found.
    let (_, child) = child_key(&h, &manager, new_key("child", MANAGER, None)).await;
    let (_, grandchild) = child_key(&h, &child, new_key("gc", &["read_booking"], None)).await;
    let listed: Vec<_> = h
        .auth
        .list_api_keys(&manager)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    let mut expected = vec![child.key_id, grandchild.key_id];
    expected.sort();
    assert_eq!(listed, expected);
    for other in [sibling.key_id, reader.key_id, manager.key_id] {
        assert!(matches!(
            h.auth.revoke_api_key(&manager, other).await,
            Err(AuthError::NotFound { .. })
        ));
    }
    assert!(
        h.auth
            .authenticate_api_key(sibling_text.expose())
            .await
            .is_ok()
    );
    h.auth
        .revoke_api_key(&manager, grandchild.key_id)
        .await
        .unwrap();
    assert!(
        h.auth.list_api_keys(&manager).await.unwrap()[1]
            .revoked_at
            .is_some()
    );
    // The user signed in still manages all of its keys.
    assert_eq!(h.auth.list_api_keys(&user).await.unwrap().len(), 5);
    h.auth.revoke_api_key(&user, sibling.key_id).await.unwrap();
}

crate::support::on_both!(
    a_child_key_never_outlives_nor_outreaches_its_parent,
    revoking_a_key_revokes_every_key_minted_from_it,
    a_key_manages_only_the_keys_minted_from_it,
);
