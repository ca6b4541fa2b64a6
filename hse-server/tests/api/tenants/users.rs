//! Issue 13 item 8 over HTTP, for direct creation: `POST /v1/users` by a
//! partner or admin tells nothing about accounts of other tenants (nor
//! root's). Below the platform it answers with an invitation, whatever the
//! email; root, who sees every account, still creates at once and is told
//! of a clash. On the memory adapter and on PostgreSQL.

use axum::http::{Method, StatusCode};
use hse_core::SystemRole;
use hse_server::backends::{self, Backends};
use serde_json::json;

use super::{PASSWORD, id, login_status, org_with_admin, shape};
use crate::client::{Answer, App, ROOT, assert_problem};

async fn create(app: &App, token: &str, email: &str, org: &str) -> Answer {
    app.post(
        "/v1/users",
        token,
        json!({"email": email, "first_name": "Eve", "role_id": SystemRole::User.id(),
               "organization_id": org}),
    )
    .await
}

async fn accept(app: &App, answer: &Answer) -> Answer {
    let token = answer.body["token"].as_str().expect("a token");
    app.call(
        Method::POST,
        &format!("/v1/invitations/{token}/accept"),
        None,
        Some(json!({"first_name": "Eve", "password": PASSWORD})),
    )
    .await
}

async fn direct_creation_of_another_tenants_email_answers_like_a_fresh_one(app: App) {
    let root = app.root_token().await;
    let (mine, admin) = org_with_admin(&app, &root, None, "admin@mine.example").await;
    let (_, _) = org_with_admin(&app, &root, None, "admin@theirs.example").await;

    let fresh = create(&app, &admin, "nobody@fresh.example", &mine).await;
    assert_eq!(fresh.status, StatusCode::ACCEPTED, "{}", fresh.body);
    for taken in ["admin@theirs.example", ROOT] {
        let answer = create(&app, &admin, taken, &mine).await;
        assert_eq!(shape(&answer), shape(&fresh), "{taken}: {}", answer.body);
        assert!(
            !answer.body.to_string().contains("already"),
            "{}",
            answer.body
        );
        // Only whoever redeems it is told the email has an account.
        let accepted = accept(&app, &answer).await;
        assert_problem(&accepted, StatusCode::CONFLICT, "already_exists");
        assert!(!accepted.body["detail"].as_str().unwrap().contains(taken));
    }
    // The other tenant's admin is untouched and signs in as before.
    assert_eq!(
        login_status(&app, "admin@theirs.example").await,
        StatusCode::OK
    );
    // The fresh one becomes a user of the admin's organization.
    let accepted = accept(&app, &fresh).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    assert_eq!(accepted.body["organization_id"], mine.as_str());
    assert_eq!(
        login_status(&app, "nobody@fresh.example").await,
        StatusCode::OK
    );
    // A clash inside the admin's own organization is still a clear 409.
    let own = create(&app, &admin, "admin@mine.example", &mine).await;
    assert_problem(&own, StatusCode::CONFLICT, "already_exists");
}

async fn only_root_creates_at_once_and_sets_a_password(app: App) {
    let root = app.root_token().await;
    let (mine, admin) = org_with_admin(&app, &root, None, "admin@mine.example").await;
    let body = |email: &str| {
        json!({"email": email, "first_name": "Eve", "role_id": SystemRole::User.id(),
               "organization_id": mine, "password": PASSWORD})
    };
    // An admin's initial password is refused, and nothing is created.
    let refused = app
        .post("/v1/users", &admin, body("desk@mine.example"))
        .await;
    assert_problem(&refused, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(refused.body["field"], "password", "{}", refused.body);
    let listed = app.get("/v1/users", &root).await;
    assert!(!listed.body.to_string().contains("desk@mine.example"));
    // Root creates the account at once; its user signs in with it.
    let created = app
        .post("/v1/users", &root, body("desk@mine.example"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["email"], "desk@mine.example");
    let _ = id(&created);
    assert_eq!(
        login_status(&app, "desk@mine.example").await,
        StatusCode::OK
    );
    // Root sees every account, so it is told of a clash anywhere.
    let again = create(&app, &root, "admin@mine.example", &mine).await;
    assert_problem(&again, StatusCode::CONFLICT, "already_exists");
}

/// The application on PostgreSQL, as the application role.
async fn on_postgres(pool: sqlx::PgPool) -> App {
    backends::migrate(&pool).await.expect("migrations apply");
    let app_role = hse_core::postgres::app_pool(&pool, 8).await.unwrap();
    App::new(Backends::from_parts(Some(app_role), None)).await
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

on_both!(
    direct_creation_of_another_tenants_email_answers_like_a_fresh_one,
    only_root_creates_at_once_and_sets_a_password,
);
