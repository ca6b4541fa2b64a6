//! End-to-end flows over the API.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use hse_core::SystemRole;
use serde_json::json;

use hse_server::backends::{self, Backends};

use crate::client::{App, ROOT, assert_problem};

fn role(r: SystemRole) -> String {
    r.id().to_string()
}

#[tokio::test]
async fn requests_without_credentials_are_401_problems() {
    let app = App::memory().await;
    let answer = app.call(Method::GET, "/v1/organizations", None, None).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    let forged = app
        .get("/v1/organizations", "eyJhbGciOiJub25lIn0.e30.")
        .await;
    assert_problem(&forged, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn login_sets_host_cookies_and_a_wrong_password_is_401() {
    let app = App::memory().await;
    let answer = app.sign_in(ROOT, &app.root_password).await;
    assert_eq!(answer.status, StatusCode::OK);
    let cookies: Vec<_> = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2);
    for cookie in &cookies {
        assert!(cookie.starts_with("__Host-hse_"), "{cookie}");
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    let wrong = app.sign_in(ROOT, "nope nope nope").await;
    assert_problem(&wrong, StatusCode::UNAUTHORIZED, "unauthenticated");
    let unknown = app.sign_in("who@example.com", "nope nope nope").await;
    assert_eq!(unknown.body["detail"], wrong.body["detail"]);
}

#[tokio::test]
async fn the_session_cookie_authenticates_too() {
    let app = App::memory().await;
    let token = app.root_token().await;
    let request = Request::get("/v1/me")
        .header("cookie", format!("__Host-hse_access={token}"))
        .body(Body::empty())
        .unwrap();
    let me = app.raw(request).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"]["email"], ROOT);
    assert_eq!(me.body["scope"]["kind"], "platform");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_ends_the_session() {
    let app = App::memory().await;
    let first = app.sign_in(ROOT, &app.root_password).await;
    let old = first.body["refresh_token"].as_str().unwrap().to_owned();
    let second = app.refresh(&old).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let newer = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(old, newer);
    let reused = app.refresh(&old).await;
    assert_problem(&reused, StatusCode::UNAUTHORIZED, "unauthenticated");
    let after = app.refresh(&newer).await;
    assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = App::memory().await;
    let login = app.sign_in(ROOT, &app.root_password).await;
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
    let out = app.logout(&refresh).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let again = app.refresh(&refresh).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let cases = [
        json!({"name": ""}),
        json!({"name": "Ok", "is_root": true}),
        json!({"name": "Ok", "contact_email": "not-an-email"}),
        json!([1, 2]),
    ];
    for body in cases {
        let answer = app.post("/v1/partner-companies", &root, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body} → {}",
            answer.body
        );
        assert!(answer.body["field"].is_string(), "{}", answer.body);
    }
    let listed = app.get("/v1/partner-companies", &root).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));
    let bad_id = app.get("/v1/organizations/not-a-uuid", &root).await;
    assert_problem(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");
    let bad_limit = app.get("/v1/organizations?limit=0", &root).await;
    assert_problem(&bad_limit, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let huge = json!({"name": "x".repeat(1024 * 1024 + 1)});
    let answer = app.post("/v1/partner-companies", &root, huge).await;
    assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn onboarding_builds_the_tree_and_tenants_never_see_each_other() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let mut partners = Vec::new();
    for name in ["Alpha Resellers", "Beta Resellers"] {
        let company = app
            .post("/v1/partner-companies", &root, json!({"name": name}))
            .await;
        assert_eq!(company.status, StatusCode::CREATED);
        let id = company.body["id"].as_str().unwrap().to_owned();
        let email = format!(
            "{}@example.com",
            name.split(' ').next().unwrap().to_lowercase()
        );
        let token = app
            .onboard(
                &root,
                &email,
                &role(SystemRole::Partner),
                json!({"kind": "partner_company", "id": id}),
            )
            .await;
        partners.push((id, token));
    }
    let (alpha_id, alpha) = &partners[0];
    let (_, beta) = &partners[1];
    let org = app
        .post(
            "/v1/organizations",
            alpha,
            json!({"partner_company_id": alpha_id, "name": "Hotel Group"}),
        )
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.body);
    let org_id = org.body["id"].as_str().unwrap().to_owned();

    let admin = app
        .onboard(
            alpha,
            "admin@hotel.example",
            &role(SystemRole::Admin),
            json!({"kind": "organization", "id": org_id}),
        )
        .await;
    let est = app
        .post(
            "/v1/establishments",
            &admin,
            json!({"organization_id": org_id, "name": "Hotel Sol", "timezone": "Europe/Madrid"}),
        )
        .await;
    assert_eq!(est.status, StatusCode::CREATED, "{}", est.body);
    let est_id = est.body["id"].as_str().unwrap().to_owned();
    let area = app
        .post(
            "/v1/areas",
            &admin,
            json!({"establishment_id": est_id, "name": "Room 101", "type": "room"}),
        )
        .await;
    assert_eq!(area.status, StatusCode::CREATED, "{}", area.body);
    let area_id = area.body["id"].as_str().unwrap().to_owned();
    let device = app
        .post(
            "/v1/devices",
            &admin,
            json!({"area_id": area_id, "device_type": "doorlock", "protocol": "hse-tcp"}),
        )
        .await;
    assert_eq!(device.status, StatusCode::CREATED, "{}", device.body);
    assert_eq!(device.body["secret"].as_str().map(str::len), Some(64));
    let device_id = device.body["id"].as_str().unwrap().to_owned();

    for path in [
        format!("/v1/organizations/{org_id}"),
        format!("/v1/establishments/{est_id}"),
        format!("/v1/areas/{area_id}"),
        format!("/v1/devices/{device_id}"),
    ] {
        assert_eq!(app.get(&path, alpha).await.status, StatusCode::OK, "{path}");
        assert_problem(
            &app.get(&path, beta).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    for list in [
        "/v1/organizations",
        "/v1/establishments",
        "/v1/areas",
        "/v1/devices",
        "/v1/users",
    ] {
        let seen = app.get(list, beta).await;
        let items = seen.body["items"].as_array().unwrap();
        let leaked = items.iter().any(|i| {
            [&org_id, &est_id, &area_id, &device_id]
                .contains(&&i["id"].as_str().unwrap_or("").to_owned())
        });
        assert!(!leaked, "{list} leaked: {}", seen.body);
    }
    let deleted = app.delete(&format!("/v1/devices/{device_id}"), beta).await;
    assert_problem(&deleted, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get(&format!("/v1/devices/{device_id}"), &admin)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_role_rules_answer_403_naming_the_rule() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let org = app
        .post("/v1/organizations", &root, json!({"name": "Direct Org"}))
        .await;
    let org_id = org.body["id"].as_str().unwrap().to_owned();
    let admin = app
        .onboard(
            &root,
            "boss@org.example",
            &role(SystemRole::Admin),
            json!({"kind": "organization", "id": org_id}),
        )
        .await;
    let partner_user = app
        .post(
            "/v1/users",
            &admin,
            json!({"email": "p@org.example", "first_name": "P", "role_id": role(SystemRole::Root)}),
        )
        .await;
    assert_problem(&partner_user, StatusCode::FORBIDDEN, "forbidden");
    let exclusive = app
        .post(
            "/v1/roles",
            &admin,
            json!({"name": "Sneaky", "hierarchy": 5, "organization_id": org_id, "permissions": ["delete_establishment"]}),
        )
        .await;
    assert_problem(&exclusive, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        exclusive.body["detail"]
            .as_str()
            .unwrap()
            .contains("delete_establishment")
    );
    let company = app
        .post("/v1/partner-companies", &admin, json!({"name": "Nope"}))
        .await;
    assert_problem(&company, StatusCode::FORBIDDEN, "forbidden");
    // Only a platform-wide caller sets an initial password (the admin's
    // users are invited): root's weak one is refused, a strong one works.
    let weak = app
        .post("/v1/users", &root, json!({"email": "u@org.example", "first_name": "U", "role_id": role(SystemRole::User), "organization_id": org_id, "password": "password"}))
        .await;
    assert_problem(&weak, StatusCode::UNPROCESSABLE_ENTITY, "weak_password");
    let ok = app
        .post("/v1/users", &root, json!({"email": "u@org.example", "first_name": "U", "role_id": role(SystemRole::User), "organization_id": org_id, "password": "a long enough passphrase"}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let user = app.login("u@org.example", "a long enough passphrase").await;
    let area = app
        .post(
            "/v1/areas",
            &user,
            json!({"establishment_id": uuid::Uuid::now_v7(), "name": "x", "type": "room"}),
        )
        .await;
    assert_problem(&area, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn unknown_routes_are_404_problems_with_security_headers() {
    let app = App::memory().await;
    let answer = app.call(Method::GET, "/v2/nothing", None, None).await;
    assert_problem(&answer, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    assert_eq!(answer.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn api_keys_act_with_at_most_their_permissions_and_die_when_revoked() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let created = app
        .post(
            "/v1/api-keys",
            &root,
            json!({"name": "reader", "permissions": ["read_organization"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("hse_"));
    let read = app
        .with_key(&key, Method::GET, "/v1/organizations", None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let write = app
        .with_key(
            &key,
            Method::POST,
            "/v1/organizations",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_problem(&write, StatusCode::FORBIDDEN, "forbidden");
    let key_id: hse_auth::ApiKeyId = created.body["id"].as_str().unwrap().parse().unwrap();
    let mut audited = Vec::new();
    for _ in 0..50 {
        audited = app.auth_store().key_usage(key_id, 10).await.unwrap();
        if audited.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen: Vec<_> = audited
        .iter()
        .map(|u| (u.route.as_str(), u.status))
        .collect();
    assert!(
        seen.contains(&("/v1/organizations", 200)) && seen.contains(&("/v1/organizations", 403)),
        "{seen:?}"
    );
    let listed = app.get("/v1/api-keys", &root).await;
    assert!(
        !listed.body.to_string().contains(&key[key.len() - 20..]),
        "secret leaked in list"
    );
    let id = created.body["id"].as_str().unwrap();
    let revoked = app.delete(&format!("/v1/api-keys/{id}"), &root).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = app
        .with_key(&key, Method::GET, "/v1/organizations", None)
        .await;
    assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthenticated");
    let nope = "hse_00000000000000000000000000000000_nope";
    let wrong = app
        .with_key(nope, Method::GET, "/v1/organizations", None)
        .await;
    assert_eq!(wrong.body["detail"], after.body["detail"]);
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = App::memory().await;
    let _ = app.call(Method::GET, "/health/liveness", None, None).await;
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = app.raw_text(request).await;
    assert!(response.contains("hse_http_requests_total"), "{response}");
    assert!(
        response.contains(r#"route="/health/liveness""#),
        "{response}"
    );
    assert!(
        response.contains("hse_http_request_duration_seconds_bucket"),
        "{response}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes() {
    let app = App::memory().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc.body["openapi"]
    );
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/v1/auth/login",
        "/v1/partner-companies/{id}",
        "/v1/invitations/{token}/accept",
        "/v1/api-keys",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Problem",
        "NewPartnerCompany",
        "Establishment",
        "PartnerCompanyId",
    ] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn a_user_past_its_request_quota_gets_429_with_retry_after() {
    let quota = hse_auth::rate_limit::Quota::new(
        std::num::NonZeroU32::new(5).unwrap(),
        std::time::Duration::from_secs(3600),
    );
    let app = App::with_state(hse_server::backends::Backends::in_memory(), |s| {
        s.services_mut().user_quota = quota
    })
    .await;
    let root = app.root_token().await;
    let mut limited = None;
    for _ in 0..10 {
        let answer = app.get("/v1/actions", &root).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, StatusCode::OK);
    }
    let answer = limited.expect("the quota was enforced");
    assert_problem(&answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(answer.headers.contains_key("retry-after"));
}

/// The principal cache (`HSE_PRINCIPAL_CACHE_MS`, default 1 s) never lets
/// a change made through this server arrive late: deactivating a user ends
/// their very next request, though their principal was just cached.
#[tokio::test]
async fn a_deactivation_through_the_api_applies_to_the_next_request() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let company = app
        .post("/v1/partner-companies", &root, json!({"name": "Cached"}))
        .await;
    let id = company.body["id"].as_str().unwrap().to_owned();
    let partner = app
        .onboard(
            &root,
            "cached@example.com",
            &role(SystemRole::Partner),
            json!({"kind": "partner_company", "id": id}),
        )
        .await;
    let me = app.get("/v1/me", &partner).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let user = me.body["user"]["id"].as_str().expect("my id").to_owned();
    assert_eq!(app.get("/v1/me", &partner).await.status, StatusCode::OK);
    let off = app
        .call(
            Method::PATCH,
            &format!("/v1/users/{user}"),
            Some(&root),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    let after = app.get("/v1/me", &partner).await;
    assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthenticated");
}

/// PostgreSQL cannot store U+0000 in text or jsonb (schemathesis found
/// it answered 503 at write time). Every such body is a 400: where the
/// model refuses control characters, and past the model (metadata, a key
/// name) because the stores map PostgreSQL's refusal to invalid input.
#[sqlx::test(migrations = false)]
async fn a_nul_character_in_a_body_is_400_and_creates_nothing(pool: sqlx::PgPool) {
    backends::migrate(&pool).await.expect("migrations apply");
    let app_role = hse_core::postgres::app_pool(&pool, 8).await.unwrap();
    let app = App::new(Backends::from_parts(Some(app_role), None)).await;
    let root = app.root_token().await;
    for body in [
        json!({"name": "Acme\u{0}"}),
        json!({"name": "Acme", "metadata": {"k\u{0}": true}}),
    ] {
        let answer = app.post("/v1/organizations", &root, body).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let listed = app.get("/v1/organizations", &root).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));
    let org = app
        .post("/v1/organizations", &root, json!({"name": "Acme"}))
        .await;
    let org = &org.body["id"];
    let nul = json!({"k\u{0}": "a\u{0}b"});
    for (path, body) in [
        (
            "/v1/establishments",
            json!({"organization_id": org, "name": "Hotel", "timezone": "Europe/Madrid", "metadata": nul}),
        ),
        (
            "/v1/guests",
            json!({"organization_id": org, "first_name": "Ana", "metadata": nul}),
        ),
        (
            "/v1/api-keys",
            json!({"name": "k\u{0}", "permissions": ["read_booking"]}),
        ),
    ] {
        let answer = app.post(path, &root, body).await;
        assert_problem(&answer, StatusCode::BAD_REQUEST, "invalid_input");
        let listed = app.get(path, &root).await;
        let items = listed.body.get("items").unwrap_or(&listed.body);
        assert_eq!(items.as_array().map(Vec::len), Some(0), "{path}");
    }
}
