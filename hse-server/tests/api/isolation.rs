//! The tenant wall, generated from the route table: every id-bearing route
//! of `/openapi.json` is called as tenant A with tenant B's ids and must
//! answer 404, B's data must be unchanged afterwards, and no list shows
//! B's rows to A. A new route without a mapping here fails the test, so
//! the wall cannot silently miss one.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use hse_core::SystemRole;
use serde_json::{Value, json};

use crate::client::App;

/// One tenant: a partner company with an organization full of things.
struct Tenant {
    partner: String,
    admin: String,
    ids: BTreeMap<&'static str, String>,
}

pub(crate) fn id_of(answer: &crate::client::Answer) -> String {
    assert!(
        answer.status.is_success(),
        "{} {}",
        answer.status,
        answer.body
    );
    answer.body["id"].as_str().expect("an id").to_owned()
}

impl Tenant {
    async fn new(app: &App, root: &str, name: &str) -> Self {
        let mut ids = BTreeMap::new();
        let company = id_of(
            &app.post("/v1/partner-companies", root, json!({"name": name}))
                .await,
        );
        let partner = app
            .onboard(
                root,
                &format!("partner@{name}.example"),
                &SystemRole::Partner.id().to_string(),
                json!({"kind": "partner_company", "id": company}),
            )
            .await;
        let org = id_of(
            &app.post(
                "/v1/organizations",
                &partner,
                json!({"partner_company_id": company, "name": name}),
            )
            .await,
        );
        let admin = app
            .onboard(
                &partner,
                &format!("admin@{name}.example"),
                &SystemRole::Admin.id().to_string(),
                json!({"kind": "organization", "id": org}),
            )
            .await;
        let est = id_of(
            &app.post(
                "/v1/establishments",
                &admin,
                json!({"organization_id": org, "name": name, "timezone": "UTC"}),
            )
            .await,
        );
        let area = id_of(
            &app.post(
                "/v1/areas",
                &admin,
                json!({"establishment_id": est, "name": "101", "type": "room"}),
            )
            .await,
        );
        let device = id_of(
            &app.post(
                "/v1/devices",
                &admin,
                json!({"area_id": area, "device_type": "doorlock", "protocol": "hse-tcp"}),
            )
            .await,
        );
        let guest = id_of(
            &app.post(
                "/v1/guests",
                &admin,
                json!({"first_name": "Ana", "email": format!("ana@{name}.example")}),
            )
            .await,
        );
        let stay = json!({"check_in": "2031-03-01T14:00:00Z", "check_out": "2031-03-02T10:00:00Z"});
        let booking = id_of(
            &app.post(
                "/v1/bookings",
                &admin,
                json!({"area_id": area, "guest_id": guest, "stay": stay}),
            )
            .await,
        );
        let role = id_of(
            &app.post("/v1/roles", &admin, json!({"name": "Desk", "hierarchy": 5, "organization_id": org, "permissions": ["read_booking"]}))
                .await,
        );
        // Root creates the account at once (the admin would be answered
        // with an invitation).
        let user = id_of(
            &app.post("/v1/users", root, json!({"email": format!("desk@{name}.example"), "first_name": "D", "role_id": role, "organization_id": org}))
                .await,
        );
        let key = id_of(
            &app.post(
                "/v1/api-keys",
                &admin,
                json!({"name": "k", "permissions": ["read_booking"]}),
            )
            .await,
        );
        for (k, v) in [
            ("partner-companies", company),
            ("organizations", org),
            ("establishments", est),
            ("areas", area),
            ("devices", device),
            ("guests", guest),
            ("bookings", booking),
            ("roles", role),
            ("users", user),
            ("api-keys", key),
        ] {
            ids.insert(k, v);
        }
        Self {
            partner,
            admin,
            ids,
        }
    }

    /// Everything B owns, as B's admin and partner read it.
    async fn snapshot(&self, app: &App) -> Vec<Value> {
        let mut seen = Vec::new();
        for (collection, id) in &self.ids {
            let reader = if *collection == "partner-companies" {
                &self.partner
            } else {
                &self.admin
            };
            if *collection == "api-keys" {
                seen.push(app.get("/v1/api-keys", reader).await.body);
                continue;
            }
            let answer = app.get(&format!("/v1/{collection}/{id}"), reader).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{collection}: {}",
                answer.body
            );
            seen.push(answer.body);
        }
        seen
    }
}

/// The body a route needs to get past input validation, so that the
/// answer is about the target and not about the body.
fn body_for(path: &str, a: &Tenant) -> Value {
    if path.ends_with("/users") {
        json!({"user_id": a.ids["users"]})
    } else if path.ends_with("/companions") {
        json!({"companion_id": a.ids["guests"], "relationship": "friend"})
    } else if path.ends_with("/commands") {
        json!({"command_type": "unlock", "params": {}})
    } else {
        json!({})
    }
}

const RANGE: &str =
    "?from=2031-01-01T00:00:00Z&to=2031-01-02T00:00:00Z&bucket=hour&event_type=temperature";

/// Every (method, path) of the OpenAPI document.
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_some() {
                ops.push((
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
                    path.clone(),
                ));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_id_route_answers_404_across_tenants_and_changes_nothing() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let a = Tenant::new(&app, &root, "alpha").await;
    let b = Tenant::new(&app, &root, "beta").await;
    let before = b.snapshot(&app).await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut checked = 0;
    for (method, template) in operations(&doc) {
        if !template.contains("{id}") {
            continue;
        }
        let collection = template.split('/').nth(2).expect("a collection");
        let target = b
            .ids
            .get(collection)
            .unwrap_or_else(|| panic!("no cross-tenant id for {template}: add it to Tenant"));
        let mut path = template.replace("{id}", target);
        if ["/availability", "/events", "/aggregates"]
            .iter()
            .any(|s| path.ends_with(s))
        {
            path.push_str(RANGE);
        }
        let body = matches!(method, Method::POST | Method::PATCH).then(|| body_for(&template, &a));
        for token in [&a.partner, &a.admin] {
            let answer = app
                .call(method.clone(), &path, Some(token), body.clone())
                .await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{method} {template} as tenant A: {}",
                answer.body
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} id routes found");
    assert_eq!(b.snapshot(&app).await, before, "tenant B's data changed");
}

#[tokio::test]
async fn no_list_shows_another_tenants_rows() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let a = Tenant::new(&app, &root, "alpha").await;
    let b = Tenant::new(&app, &root, "beta").await;
    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut checked = 0;
    for (method, path) in operations(&doc) {
        if method != Method::GET || path.contains('{') || !path.starts_with("/v1/") {
            continue;
        }
        for token in [&a.partner, &a.admin] {
            let answer = app.get(&path, token).await;
            let text = answer.body.to_string();
            for (collection, id) in &b.ids {
                assert!(
                    !text.contains(id.as_str()),
                    "GET {path} showed tenant B's {collection}: {text}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} list routes found");
}
