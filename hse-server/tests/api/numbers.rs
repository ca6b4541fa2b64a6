//! Numbers in metadata come back as they were sent, on both backends.
//!
//! PostgreSQL's `jsonb` keeps a number as its exact decimal: `f64::MAX`
//! goes in as `1.7976931348623157e308` and comes back as 309 digits.
//! schemathesis found that one such guest turned every `GET /v1/guests`
//! into a 503, because the JSON parser could not read the long form back
//! (`number out of range`). Every resource with metadata is checked here,
//! by id and in its listing.

use axum::http::StatusCode;
use hse_server::backends::{self, Backends};
use serde_json::{Value, json};

use crate::client::App;

/// The numbers at the edges of what a client can send.
fn edge_numbers() -> Value {
    json!({
        "max": f64::MAX,
        "lowest": f64::MIN,
        "smallest_subnormal": 5e-324,
        "smallest_normal": f64::MIN_POSITIVE,
        "u64": u64::MAX,
        "i64": i64::MIN,
        "nested": {"list": [1e308, -0.0, 0.1, 123_456_789.123_456_79]},
    })
}

/// Creates one of each resource with metadata, then reads each back by id
/// and through its listing.
async fn metadata_numbers_round_trip(app: &App) {
    let root = app.root_token().await;
    let meta = edge_numbers();
    let org = app
        .post("/v1/organizations", &root, json!({"name": "Numbers"}))
        .await;
    assert_eq!(org.status, StatusCode::CREATED, "{}", org.body);
    let org = org.body["id"].clone();
    let est = create(app, &root, "/v1/establishments",
        json!({"organization_id": org, "name": "Hotel", "timezone": "Europe/Madrid", "metadata": meta})).await;
    let area = create(
        app,
        &root,
        "/v1/areas",
        json!({"establishment_id": est, "name": "Room 1", "type": "room", "metadata": meta}),
    )
    .await;
    create(
        app,
        &root,
        "/v1/devices",
        json!({"area_id": area, "device_type": "sensor", "protocol": "hse-tcp", "metadata": meta}),
    )
    .await;
    let guest = create(
        app,
        &root,
        "/v1/guests",
        json!({"organization_id": org, "first_name": "Ana", "metadata": meta}),
    )
    .await;
    create(
        app,
        &root,
        "/v1/bookings",
        json!({"area_id": area, "guest_id": guest, "metadata": meta,
               "stay": {"check_in": "2030-06-02T14:00:00Z", "check_out": "2030-06-04T10:00:00Z"}}),
    )
    .await;
}

/// POSTs `body`, then checks the metadata by id and in the listing of
/// `path`; returns the new id.
async fn create(app: &App, token: &str, path: &str, body: Value) -> Value {
    let created = app.post(path, token, body.clone()).await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{path}: {}",
        created.body
    );
    assert_eq!(
        created.body["metadata"], body["metadata"],
        "{path} as created"
    );
    let id = created.body["id"].clone();
    let id_text = id.as_str().expect("an id");
    let read = app.get(&format!("{path}/{id_text}"), token).await;
    assert_eq!(read.status, StatusCode::OK, "{path}/{{id}}: {}", read.body);
    assert_eq!(read.body["metadata"], body["metadata"], "{path}/{{id}}");
    let listed = app.get(path, token).await;
    assert_eq!(listed.status, StatusCode::OK, "{path}: {}", listed.body);
    let items = listed.body["items"].as_array().expect("a listing");
    let item = items.iter().find(|i| i["id"] == id).expect("listed");
    assert_eq!(item["metadata"], body["metadata"], "{path} listed");
    id
}

#[tokio::test]
async fn metadata_numbers_round_trip_in_memory() {
    metadata_numbers_round_trip(&App::memory().await).await;
}

#[sqlx::test(migrations = false)]
async fn metadata_numbers_round_trip_on_postgres(pool: sqlx::PgPool) {
    backends::migrate(&pool).await.expect("migrations apply");
    let app_role = hse_core::postgres::app_pool(&pool, 8).await.unwrap();
    let app = App::new(Backends::from_parts(Some(app_role), None)).await;
    metadata_numbers_round_trip(&app).await;
}
