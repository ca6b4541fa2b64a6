//! Issue 13 over HTTP, as a client sees it: keys made with keys (a child
//! never outlives nor outreaches its parent, revoking the parent ends the
//! child), a key manages only its own descendants, access tokens end with
//! their session, and sign-in throttles the failing source, not the owner.
//!
//! Choice: a child key asking for no expiry, or one later than its
//! parent's, is refused with 400 `invalid_input` naming `expires_at`; it
//! is never clamped silently.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use chrono::{Duration, Utc};
use hse_server::backends::{self, Backends};
use serde_json::{Value, json};

use crate::client::{Answer, App, ROOT, assert_problem, tokens};

const MANAGER: [&str; 4] = [
    "create_api_key",
    "read_api_key",
    "delete_api_key",
    "read_organization",
];

/// Creates a key with `token` (user) or `key` (API key); the answer.
async fn create(app: &App, by: By<'_>, permissions: &[&str], expires: Option<Duration>) -> Answer {
    let mut body = json!({"name": "k", "permissions": permissions});
    if let Some(d) = expires {
        body["expires_at"] = json!((Utc::now() + d).to_rfc3339());
    }
    match by {
        By::User(token) => app.post("/v1/api-keys", token, body).await,
        By::Key(key) => {
            app.with_key(key, Method::POST, "/v1/api-keys", Some(body))
                .await
        }
    }
}

#[derive(Clone, Copy)]
enum By<'a> {
    User(&'a str),
    Key(&'a str),
}

fn text(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["api_key"].as_str().expect("api_key").to_owned()
}

async fn works(app: &App, key: &str) -> StatusCode {
    app.with_key(key, Method::GET, "/v1/organizations", None)
        .await
        .status
}

async fn a_child_key_never_outlives_nor_outreaches_its_parent(app: App) {
    let root = app.root_token().await;
    let parent_answer = create(&app, By::User(&root), &MANAGER, Some(Duration::minutes(10))).await;
    let parent = text(&parent_answer);
    for later in [None, Some(Duration::hours(1))] {
        let refused = create(&app, By::Key(&parent), &["read_organization"], later).await;
        assert_problem(&refused, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            refused.body.to_string().contains("expires_at"),
            "{}",
            refused.body
        );
    }
    // Root holds create_organization; the parent key does not.
    let wider = create(
        &app,
        By::Key(&parent),
        &["create_organization"],
        Some(Duration::minutes(5)),
    )
    .await;
    assert_problem(&wider, StatusCode::FORBIDDEN, "forbidden");
    let child = create(
        &app,
        By::Key(&parent),
        &["read_organization"],
        Some(Duration::minutes(5)),
    )
    .await;
    assert_eq!(
        child.body["parent_id"], parent_answer.body["id"],
        "{}",
        child.body
    );
    assert_eq!(works(&app, &text(&child)).await, StatusCode::OK);
    // Made by the user signed in, a key has no parent.
    let own = create(&app, By::User(&root), &["read_organization"], None).await;
    assert_eq!(own.body["parent_id"], Value::Null);
}

async fn revoking_a_parent_key_makes_its_children_401(app: App) {
    let root = app.root_token().await;
    let parent_answer = create(&app, By::User(&root), &MANAGER, None).await;
    let parent = text(&parent_answer);
    let child = text(&create(&app, By::Key(&parent), &MANAGER, None).await);
    let grandchild = text(&create(&app, By::Key(&child), &["read_organization"], None).await);
    let sibling = text(&create(&app, By::User(&root), &["read_organization"], None).await);
    assert_eq!(works(&app, &grandchild).await, StatusCode::OK);
    let id = parent_answer.body["id"].as_str().unwrap();
    let revoked = app.delete(&format!("/v1/api-keys/{id}"), &root).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    for key in [&parent, &child, &grandchild] {
        let after = app
            .with_key(key, Method::GET, "/v1/organizations", None)
            .await;
        assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_eq!(works(&app, &sibling).await, StatusCode::OK);
}

async fn a_read_only_key_cannot_list_or_revoke_its_siblings(app: App) {
    let root = app.root_token().await;
    let reader = text(&create(&app, By::User(&root), &["read_organization"], None).await);
    let sibling_answer = create(&app, By::User(&root), &["read_organization"], None).await;
    let sibling = text(&sibling_answer);
    let sibling_id = sibling_answer.body["id"].as_str().unwrap().to_owned();
    let listed = app
        .with_key(&reader, Method::GET, "/v1/api-keys", None)
        .await;
    assert_problem(&listed, StatusCode::FORBIDDEN, "forbidden");
    assert!(!listed.body.to_string().contains(&sibling_id));
    let path = format!("/v1/api-keys/{sibling_id}");
    let revoke = app.with_key(&reader, Method::DELETE, &path, None).await;
    assert_problem(&revoke, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(works(&app, &sibling).await, StatusCode::OK);
    // A managing key sees and revokes only what it minted: a sibling is
    // 404 exactly like an id that does not exist.
    let manager = text(&create(&app, By::User(&root), &MANAGER, None).await);
    let child_answer = create(&app, By::Key(&manager), &["read_organization"], None).await;
    let listed = app
        .with_key(&manager, Method::GET, "/v1/api-keys", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let ids: Vec<&Value> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["id"])
        .collect();
    assert_eq!(ids, vec![&child_answer.body["id"]]);
    let not_mine = app.with_key(&manager, Method::DELETE, &path, None).await;
    let unknown = format!("/v1/api-keys/{}", uuid::Uuid::now_v7());
    let unknown = app.with_key(&manager, Method::DELETE, &unknown, None).await;
    assert_problem(&not_mine, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(not_mine.body["detail"], unknown.body["detail"]);
    assert_eq!(works(&app, &sibling).await, StatusCode::OK);
    let child_path = format!("/v1/api-keys/{}", child_answer.body["id"].as_str().unwrap());
    let mine = app
        .with_key(&manager, Method::DELETE, &child_path, None)
        .await;
    assert_eq!(mine.status, StatusCode::NO_CONTENT, "{}", mine.body);
    // The user signed in still lists all of its keys.
    let all = app.get("/v1/api-keys", &root).await;
    assert_eq!(all.body.as_array().unwrap().len(), 4, "{}", all.body);
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(crate::client::App::memory().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[sqlx::test(migrations = false)]
                async fn $case(pool: sqlx::PgPool) {
                    super::$case(super::on_postgres(pool).await).await;
                }
            )*
        }
    };
}

/// The application on PostgreSQL, as the application role.
async fn on_postgres(pool: sqlx::PgPool) -> App {
    backends::migrate(&pool).await.expect("migrations apply");
    let app_role = hse_core::postgres::app_pool(&pool, 8).await.unwrap();
    App::new(Backends::from_parts(Some(app_role), None)).await
}

on_both!(
    a_child_key_never_outlives_nor_outreaches_its_parent,
    revoking_a_parent_key_makes_its_children_401,
    a_read_only_key_cannot_list_or_revoke_its_siblings,
);

/// Signs in from `ip`; the answer.
async fn login_from(app: &App, email: &str, password: &str, ip: &str) -> Answer {
    let peer: SocketAddr = format!("{ip}:40000").parse().expect("address");
    let request = Request::post("/v1/auth/login")
        .header("content-type", "application/json")
        .extension(ConnectInfo(peer))
        .body(Body::from(
            json!({"email": email, "password": password}).to_string(),
        ))
        .expect("request builds");
    app.raw(request).await
}

async fn me(app: &App, access: &str) -> StatusCode {
    app.get("/v1/me", access).await.status
}

#[tokio::test]
async fn an_access_token_is_401_right_after_sign_out() {
    let app = App::memory().await;
    let password = app.root_password.clone();
    let (access, refresh_token) = tokens(&login_from(&app, ROOT, &password, "192.0.2.1").await);
    let (other, _) = tokens(&login_from(&app, ROOT, &password, "192.0.2.1").await);
    assert_eq!(me(&app, &access).await, StatusCode::OK);
    let out = app.logout(&refresh_token).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    let after = app.get("/v1/me", &access).await;
    assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        me(&app, &other).await,
        StatusCode::OK,
        "another session ended too"
    );
}

#[tokio::test]
async fn access_tokens_are_401_once_their_refresh_token_is_reused() {
    let app = App::memory().await;
    let password = app.root_password.clone();
    let (first_access, first_refresh) =
        tokens(&login_from(&app, ROOT, &password, "192.0.2.2").await);
    let (second_access, _) = tokens(&app.refresh(&first_refresh).await);
    assert_eq!(me(&app, &first_access).await, StatusCode::OK);
    assert_eq!(me(&app, &second_access).await, StatusCode::OK);
    let reused = app.refresh(&first_refresh).await;
    assert_problem(&reused, StatusCode::UNAUTHORIZED, "unauthenticated");
    for access in [&first_access, &second_access] {
        let after = app.get("/v1/me", access).await;
        assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

/// Sends wrong passwords from `ip` (to `email`, or a new account each
/// time when `None`) until one is answered 429, at most `tries` times;
/// the number of 401s before it. Real time passes between attempts (each
/// runs a real Argon2 check), so the test waits for the limit to show
/// instead of counting on an exact attempt.
async fn fail_until_limited(app: &App, email: Option<&str>, ip: &str, tries: usize) -> usize {
    for i in 0..tries {
        let account = email.map_or_else(|| format!("user{i}@example.com"), str::to_owned);
        let answer = login_from(app, &account, "Winter2026!", ip).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_problem(&answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            assert!(answer.headers.contains_key("retry-after"));
            return i;
        }
        assert_problem(&answer, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    panic!("{tries} failed sign-ins from {ip} and never a 429");
}

#[tokio::test]
async fn the_right_password_still_signs_in_after_wrong_ones_from_another_source() {
    let app = App::memory().await;
    let password = app.root_password.clone();
    let attacker = "203.0.113.9";
    let failed = fail_until_limited(&app, Some(ROOT), attacker, 12).await;
    assert!(failed >= 3, "limited after {failed} failures");
    // The failing source is slowed, even with the right password…
    let slowed = login_from(&app, ROOT, &password, attacker).await;
    assert_problem(&slowed, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // …and the owner, elsewhere, is not.
    tokens(&login_from(&app, ROOT, &password, "198.51.100.4").await);
}

#[tokio::test]
async fn sign_in_attempts_from_one_source_are_limited_across_accounts() {
    let app = App::memory().await;
    let password = app.root_password.clone();
    // One attempt per account: no account's own record ever fills.
    let failed = fail_until_limited(&app, None, "192.0.2.50", 40).await;
    assert!(failed >= 10, "limited after {failed} attempts");
    tokens(&login_from(&app, ROOT, &password, "192.0.2.51").await);
}
