//! Issue 13 over HTTP: a suspended tenant's users cannot sign in, use a
//! token or an API key, and cannot lift the suspension themselves; its
//! devices take no commands and its door codes wait; a one-establishment
//! admin cannot manage the chief admin; an invitation or a direct creation
//! tells nothing about accounts of other tenants; raw door-code commands
//! are refused.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use hse_core::SystemRole;
use hse_server::backends::Backends;
use serde_json::{Value, json};

use crate::client::{Answer, App, assert_problem};

mod devices;
mod users;

const PASSWORD: &str = "a long enough passphrase";

fn id(answer: &Answer) -> String {
    answer.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id in {}", answer.body))
        .to_owned()
}

async fn patch(app: &App, path: &str, token: &str, body: Value) -> Answer {
    app.call(Method::PATCH, path, Some(token), Some(body)).await
}

async fn login_status(app: &App, email: &str) -> StatusCode {
    app.sign_in(email, PASSWORD).await.status
}

/// An organization (optionally under a partner company) and its admin's
/// token.
async fn org_with_admin(
    app: &App,
    inviter: &str,
    partner: Option<&str>,
    email: &str,
) -> (String, String) {
    let org = app
        .post(
            "/v1/organizations",
            inviter,
            json!({"name": "Hotels SA", "partner_company_id": partner}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.body);
    let org = id(&org);
    let admin = app
        .onboard(
            inviter,
            email,
            &SystemRole::Admin.id().to_string(),
            json!({"kind": "organization", "id": org}),
        )
        .await;
    (org, admin)
}

async fn establishment(app: &App, admin: &str, org: &str, name: &str) -> String {
    let est = app
        .post(
            "/v1/establishments",
            admin,
            json!({"organization_id": org, "name": name, "timezone": "Europe/Madrid"}),
        )
        .await;
    assert_eq!(est.status, StatusCode::CREATED, "{}", est.body);
    id(&est)
}

/// A door lock in a new room of `est`.
async fn lock(app: &App, admin: &str, est: &str) -> (String, String) {
    let area = app
        .post(
            "/v1/areas",
            admin,
            json!({"establishment_id": est, "name": "Room 101", "type": "room"}),
        )
        .await;
    let area = id(&area);
    let lock = app
        .post(
            "/v1/devices",
            admin,
            json!({"area_id": area, "device_type": "doorlock", "protocol": "hse-tcp"}),
        )
        .await;
    assert_eq!(lock.status, StatusCode::CREATED, "{}", lock.body);
    (area, id(&lock))
}

fn suspended(active: bool) -> Value {
    json!({"is_active": active})
}

#[tokio::test]
async fn a_suspended_organizations_admin_cannot_sign_in_use_a_token_or_a_key() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let (org, admin) = org_with_admin(&app, &root, None, "admin@sol.example").await;
    let key = app
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "pms", "permissions": ["read_organization", "create_establishment"]}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let key = key.body["api_key"].as_str().unwrap().to_owned();
    let create = json!({"organization_id": org, "name": "Annex", "timezone": "Europe/Madrid"});
    let me = app.with_key(&key, Method::GET, "/v1/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);

    let off = patch(
        &app,
        &format!("/v1/organizations/{org}"),
        &root,
        suspended(false),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.body["is_active"], false);

    assert_eq!(
        login_status(&app, "admin@sol.example").await,
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        &app.get("/v1/me", &admin).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let made = app.post("/v1/establishments", &admin, create.clone()).await;
    assert_problem(&made, StatusCode::UNAUTHORIZED, "unauthenticated");
    let by_key = app.with_key(&key, Method::GET, "/v1/me", None).await;
    assert_problem(&by_key, StatusCode::UNAUTHORIZED, "unauthenticated");
    let made = app
        .with_key(
            &key,
            Method::POST,
            "/v1/establishments",
            Some(create.clone()),
        )
        .await;
    assert_problem(&made, StatusCode::UNAUTHORIZED, "unauthenticated");
    // Root still reads it; nothing was created meanwhile.
    let listed = app.get("/v1/establishments", &root).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 0);

    // Reinstated, the same credentials work again.
    let on = patch(
        &app,
        &format!("/v1/organizations/{org}"),
        &root,
        suspended(true),
    )
    .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_eq!(
        login_status(&app, "admin@sol.example").await,
        StatusCode::OK
    );
    assert_eq!(app.get("/v1/me", &admin).await.status, StatusCode::OK);
    let made = app
        .with_key(&key, Method::POST, "/v1/establishments", Some(create))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
}

#[tokio::test]
async fn a_suspension_made_elsewhere_applies_once_the_principal_cache_expires() {
    // A write straight to the store (another process, say) retires no
    // cached principal here: the cache bound (HSE_PRINCIPAL_CACHE_MS,
    // 1 s by default) decides how late it applies.
    let mut state = None;
    let app = App::with_state(Backends::in_memory(), |s| state = Some(s.clone())).await;
    let state = state.expect("state");
    let root = app.root_token().await;
    let (org, admin) = org_with_admin(&app, &root, None, "admin@far.example").await;
    assert_eq!(app.get("/v1/me", &admin).await.status, StatusCode::OK);
    let org: hse_core::OrganizationId = org.parse().unwrap();
    let patch = hse_core::model::OrganizationPatch {
        is_active: Some(false),
        ..Default::default()
    };
    state
        .tenancy
        .store()
        .update_organization(&hse_core::Scope::Platform, org, patch, chrono::Utc::now())
        .await
        .unwrap();
    let mut status = StatusCode::OK;
    for _ in 0..30 {
        status = app.get("/v1/me", &admin).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "refused within the 1 s principal cache"
    );
}

#[tokio::test]
async fn a_suspended_partner_creates_no_organizations_and_lifts_nothing() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let company = app
        .post(
            "/v1/partner-companies",
            &root,
            json!({"name": "Resells Ltd"}),
        )
        .await;
    let company = id(&company);
    let partner = app
        .onboard(
            &root,
            "partner@resells.example",
            &SystemRole::Partner.id().to_string(),
            json!({"kind": "partner_company", "id": company}),
        )
        .await;
    let new_org = json!({"name": "Hotels SA", "partner_company_id": company});
    let made = app
        .post("/v1/organizations", &partner, new_org.clone())
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);

    // The partner cannot suspend (nor, later, reinstate) its own company.
    let own = patch(
        &app,
        &format!("/v1/partner-companies/{company}"),
        &partner,
        suspended(false),
    )
    .await;
    assert_problem(&own, StatusCode::FORBIDDEN, "forbidden");
    let off = patch(
        &app,
        &format!("/v1/partner-companies/{company}"),
        &root,
        suspended(false),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);

    let made = app.post("/v1/organizations", &partner, new_org).await;
    assert_problem(&made, StatusCode::UNAUTHORIZED, "unauthenticated");
    let lift = patch(
        &app,
        &format!("/v1/partner-companies/{company}"),
        &partner,
        suspended(true),
    )
    .await;
    assert_problem(&lift, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        login_status(&app, "partner@resells.example").await,
        StatusCode::UNAUTHORIZED
    );
    let orgs = app.get("/v1/organizations", &root).await;
    assert_eq!(orgs.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn only_a_level_above_suspends_or_reinstates_an_organization() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let company = id(&app
        .post(
            "/v1/partner-companies",
            &root,
            json!({"name": "Resells Ltd"}),
        )
        .await);
    let partner = app
        .onboard(
            &root,
            "partner@above.example",
            &SystemRole::Partner.id().to_string(),
            json!({"kind": "partner_company", "id": company}),
        )
        .await;
    let (org, admin) = org_with_admin(&app, &partner, Some(&company), "admin@below.example").await;
    let path = format!("/v1/organizations/{org}");

    let own = patch(&app, &path, &admin, suspended(false)).await;
    assert_problem(&own, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        own.body["detail"].as_str().unwrap().contains("level above"),
        "{}",
        own.body
    );
    let renamed = patch(&app, &path, &admin, json!({"name": "Hotels SL"})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["is_active"], true);

    let off = patch(&app, &path, &partner, suspended(false)).await;
    assert_eq!(
        (off.status, &off.body["is_active"]),
        (StatusCode::OK, &json!(false))
    );
    let lift = patch(&app, &path, &admin, suspended(true)).await;
    assert_problem(&lift, StatusCode::UNAUTHORIZED, "unauthenticated");
    let on = patch(&app, &path, &partner, suspended(true)).await;
    assert_eq!(
        (on.status, &on.body["is_active"]),
        (StatusCode::OK, &json!(true))
    );
    let company_off = patch(
        &app,
        &format!("/v1/partner-companies/{company}"),
        &root,
        suspended(false),
    )
    .await;
    assert_eq!(company_off.status, StatusCode::OK, "{}", company_off.body);
}

#[tokio::test]
async fn a_one_establishment_admin_cannot_manage_the_chief_admin() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let (org, chief) = org_with_admin(&app, &root, None, "chief@two.example").await;
    let (a, _b) = (
        establishment(&app, &chief, &org, "Sol").await,
        establishment(&app, &chief, &org, "Mar").await,
    );
    let chief_id = app.get("/v1/me", &chief).await.body["user"]["id"].clone();
    let narrow = app
        .onboard(
            &chief,
            "narrow@two.example",
            &SystemRole::Admin.id().to_string(),
            json!({"kind": "organization", "id": org}),
        )
        .await;
    let narrow_id = app.get("/v1/me", &narrow).await.body["user"]["id"].clone();
    let assigned = app
        .post(
            &format!("/v1/establishments/{a}/users"),
            &chief,
            json!({"user_id": narrow_id}),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::CREATED, "{}", assigned.body);

    let chief_path = format!("/v1/users/{}", chief_id.as_str().unwrap());
    let rename = patch(&app, &chief_path, &narrow, json!({"first_name": "Mallory"})).await;
    assert_problem(&rename, StatusCode::FORBIDDEN, "forbidden");
    let off = patch(&app, &chief_path, &narrow, json!({"is_active": false})).await;
    assert_problem(&off, StatusCode::FORBIDDEN, "forbidden");
    let deleted = app
        .call(Method::DELETE, &chief_path, Some(&narrow), None)
        .await;
    assert_problem(&deleted, StatusCode::FORBIDDEN, "forbidden");
    let reassign = app
        .post(
            &format!("/v1/establishments/{a}/users"),
            &narrow,
            json!({"user_id": chief_id}),
        )
        .await;
    assert_problem(&reassign, StatusCode::FORBIDDEN, "forbidden");
    let seen = app.get("/v1/me", &chief).await;
    assert_eq!(seen.status, StatusCode::OK, "the chief's session survives");
    assert_eq!(seen.body["user"]["first_name"], "Ana");

    // The chief manages the narrow admin (same rank, within its two).
    let narrow_path = format!("/v1/users/{}", narrow_id.as_str().unwrap());
    let renamed = patch(&app, &narrow_path, &chief, json!({"first_name": "Nora"})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
}

async fn invite(app: &App, token: &str, email: &str, org: &str) -> Answer {
    app.post(
        "/v1/invitations",
        token,
        json!({"email": email, "role_id": SystemRole::User.id(),
               "target": {"kind": "organization", "id": org}}),
    )
    .await
}

/// The shape of an answer, without the values that differ per call.
fn shape(answer: &Answer) -> (StatusCode, Vec<String>, Value, Value) {
    let invitation = &answer.body["invitation"];
    let mut keys: Vec<String> = invitation
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    (
        answer.status,
        keys,
        invitation["status"].clone(),
        invitation["role_id"].clone(),
    )
}

#[tokio::test]
async fn an_invitation_of_another_tenants_email_answers_like_a_fresh_one() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let (mine, admin) = org_with_admin(&app, &root, None, "admin@mine.example").await;
    let (_, _) = org_with_admin(&app, &root, None, "admin@theirs.example").await;

    let fresh = invite(&app, &admin, "nobody@fresh.example", &mine).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    for taken in ["admin@theirs.example", crate::client::ROOT] {
        let answer = invite(&app, &admin, taken, &mine).await;
        assert_eq!(shape(&answer), shape(&fresh), "{taken}: {}", answer.body);
        assert!(
            !answer.body.to_string().contains("already"),
            "{}",
            answer.body
        );
        // Whoever redeems it is told the email has an account, no more.
        let token = answer.body["token"].as_str().unwrap();
        let accepted = app
            .call(
                Method::POST,
                &format!("/v1/invitations/{token}/accept"),
                None,
                Some(json!({"first_name": "Eve", "password": PASSWORD})),
            )
            .await;
        assert_problem(&accepted, StatusCode::CONFLICT, "already_exists");
        assert!(
            !accepted.body["detail"].as_str().unwrap().contains(taken),
            "{}",
            accepted.body
        );
    }
    // The other tenant's admin still signs in with its own password.
    assert_eq!(
        login_status(&app, "admin@theirs.example").await,
        StatusCode::OK
    );
    // A clash inside the inviter's own organization is still a clear 409.
    let own = invite(&app, &admin, "admin@mine.example", &mine).await;
    assert_problem(&own, StatusCode::CONFLICT, "already_exists");
}
