//! Devices over the API, on the in-memory pipeline: state, events and
//! rollups after ingest, commands to a connected (simulated) device, dead
//! letters, and another tenant seeing none of it.

use std::time::Duration;

use axum::http::StatusCode;
use hse_core::{DeviceId, SystemRole};
use hse_devices::writer::WriterConfig;
use hse_devices::{Event, EventType};
use hse_server::backends::Backends;
use hse_server::state::AppState;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::{App, assert_problem};

/// One organization with its admin, a room and its door lock.
struct Tenant {
    admin: String,
    area: Value,
    device: DeviceId,
}

impl Tenant {
    async fn new(app: &App, root: &str, name: &str) -> Self {
        let org = app
            .post("/v1/organizations", root, json!({"name": name}))
            .await;
        assert_eq!(org.status, StatusCode::CREATED, "{}", org.body);
        let org_id = org.body["id"].as_str().unwrap().to_owned();
        let admin = app
            .onboard(
                root,
                &format!("admin@{}.example", name.to_lowercase()),
                &SystemRole::Admin.id().to_string(),
                json!({"kind": "organization", "id": org_id}),
            )
            .await;
        let est = app
            .post(
                "/v1/establishments",
                &admin,
                json!({"organization_id": org_id, "name": "Hotel", "timezone": "Europe/Madrid"}),
            )
            .await;
        let area = app
            .post(
                "/v1/areas",
                &admin,
                json!({"establishment_id": est.body["id"], "name": "Room 1", "type": "room"}),
            )
            .await;
        let device = app
            .post(
                "/v1/devices",
                &admin,
                json!({"area_id": area.body["id"], "device_type": "doorlock", "protocol": "hse-tcp"}),
            )
            .await;
        assert_eq!(device.status, StatusCode::CREATED, "{}", device.body);
        let device = device.body["id"].as_str().unwrap().parse().unwrap();
        Self {
            admin,
            area: area.body["id"].clone(),
            device,
        }
    }
}

async fn app() -> (App, AppState) {
    let mut state = None;
    let app = App::with_state(Backends::in_memory(), |s| state = Some(s.clone())).await;
    (app, state.expect("state"))
}

/// `n` temperature readings one minute apart, ending an hour ago.
fn readings(device: DeviceId, n: i64) -> Vec<Event> {
    let start = chrono::Utc::now().timestamp_millis() - 3_600_000 - n * 60_000;
    (0..n)
        .map(|i| Event {
            event_id: uuid::Uuid::now_v7(),
            device_id: device,
            ts_ms: start + i * 60_000,
            event_type: EventType::parse("temperature").unwrap(),
            value: Some(20.0 + i as f64),
            unit: Some("C".into()),
            metadata: None,
            source: Some("tcp".into()),
        })
        .collect()
}

/// Runs the batch writer until the queue is empty.
async fn store_everything(state: &AppState) {
    let stop = CancellationToken::new();
    let writer = state.devices.writer(WriterConfig {
        batch_wait: Duration::from_millis(5),
        ..WriterConfig::default()
    });
    let running = tokio::spawn(writer.run_until_stopped(stop.clone()));
    for _ in 0..200 {
        if state.devices.backlog() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    running.await.unwrap();
    assert_eq!(state.devices.backlog(), 0);
}

/// The placement cache (`HSE_PLACEMENT_CACHE_MS`, default 1 s) never lets a
/// change made through this server arrive late: a device deleted through
/// the API is 404 on the very next status read, though where it lived was
/// cached by the read just before.
#[tokio::test]
async fn a_device_deleted_through_the_api_is_gone_from_the_next_status_read() {
    let (app, _) = app().await;
    let root = app.root_token().await;
    let tenant = Tenant::new(&app, &root, "Acme").await;
    let status = format!("/v1/devices/{}/status", tenant.device);
    let before = app.get(&status, &tenant.admin).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    let device = format!("/v1/devices/{}", tenant.device);
    let gone = app
        .call(axum::http::Method::DELETE, &device, Some(&root), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
    let after = app.get(&status, &tenant.admin).await;
    assert_problem(&after, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn status_events_and_aggregates_follow_ingest() {
    let (app, state) = app().await;
    let root = app.root_token().await;
    let tenant = Tenant::new(&app, &root, "Acme").await;
    let id = tenant.device;
    let events = readings(id, 5);
    state.devices.ingest.submit(&events).await.unwrap();
    store_everything(&state).await;

    let status = app
        .get(&format!("/v1/devices/{id}/status"), &tenant.admin)
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["status"], "offline");
    assert_eq!(status.body["last_events"]["temperature"]["value"], 24.0);

    let page = app
        .get(&format!("/v1/devices/{id}/events?limit=3"), &tenant.admin)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["value"], 24.0, "newest first");
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/v1/devices/{id}/events?limit=3&cursor={cursor}"),
            &tenant.admin,
        )
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 2);
    assert!(rest.body["next_cursor"].is_null());
    let none = app
        .get(
            &format!("/v1/devices/{id}/events?event_types=alarm,error"),
            &tenant.admin,
        )
        .await;
    assert_eq!(none.body["items"], json!([]));

    let series = app
        .get(
            &format!("/v1/devices/{id}/aggregates?bucket=day&event_type=temperature"),
            &tenant.admin,
        )
        .await;
    assert_eq!(series.status, StatusCode::OK, "{}", series.body);
    let total: i64 = series.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 5);
    let sum: f64 = series.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sum"].as_f64().unwrap())
        .sum();
    assert!((sum - 110.0).abs() < 1e-9);

    for (query, field) in [
        ("bucket=week&event_type=temperature", "query"),
        ("bucket=hour&event_type=Bad!", "event_type"),
        (
            "bucket=hour&event_type=t&from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
            "to",
        ),
    ] {
        let bad = app
            .get(
                &format!("/v1/devices/{id}/aggregates?{query}"),
                &tenant.admin,
            )
            .await;
        assert_problem(&bad, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(bad.body["field"], field, "{query}");
    }
    let bad_limit = app
        .get(&format!("/v1/devices/{id}/events?limit=501"), &tenant.admin)
        .await;
    assert_problem(&bad_limit, StatusCode::BAD_REQUEST, "invalid_input");

    hse_server::devices::gauges::sample(&state.devices).await;
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let metrics = app.raw_text(request).await;
    for series in [
        "hse_devices_events_enqueued_total",
        "hse_devices_events_stored_total",
        "hse_devices_batch_duration_seconds_bucket",
        "hse_devices_queue_backlog",
        "hse_devices_connected",
        "hse_devices_dead_letters{state=\"permanent\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
}

#[tokio::test]
async fn a_stored_code_used_event_counts_once_on_its_door_code() {
    let (app, state) = app().await;
    let root = app.root_token().await;
    let tenant = Tenant::new(&app, &root, "Acme").await;
    let guest = app
        .post(
            "/v1/guests",
            &tenant.admin,
            json!({"first_name": "Ana", "email": "ana@guest.example"}),
        )
        .await;
    let booking = app
        .post(
            "/v1/bookings",
            &tenant.admin,
            json!({"area_id": tenant.area, "guest_id": guest.body["id"],
                   "stay": {"check_in": "2030-06-01T14:00:00Z", "check_out": "2030-06-03T10:00:00Z"}}),
        )
        .await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.body);
    let booking = booking.body["id"].as_str().unwrap().to_owned();
    let confirmed = app
        .post(
            &format!("/v1/bookings/{booking}/confirm"),
            &tenant.admin,
            json!({}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let codes = format!("/v1/bookings/{booking}/doorlock-codes");
    let code = app.get(&codes, &tenant.admin).await.body["items"][0]["id"].clone();
    assert!(code.is_string(), "a code was issued");

    // The lock reports the code used; the device retries the same event.
    let used = Event {
        event_type: EventType::parse("code_used").unwrap(),
        value: None,
        unit: None,
        metadata: json!({"code_id": code}).as_object().cloned(),
        ..readings(tenant.device, 1).remove(0)
    };
    let rejected = Event {
        event_id: uuid::Uuid::now_v7(),
        event_type: EventType::parse("code_rejected").unwrap(),
        ..used.clone()
    };
    for batch in [vec![used.clone(), rejected], vec![used]] {
        state.devices.ingest.submit(&batch).await.unwrap();
        store_everything(&state).await;
    }
    let seen = app.get(&codes, &tenant.admin).await;
    assert_eq!(seen.body["items"][0]["usage_count"], 1, "{}", seen.body);
}

#[tokio::test]
async fn commands_reach_a_connected_device_and_fail_clearly_otherwise() {
    let (app, state) = app().await;
    let root = app.root_token().await;
    let tenant = Tenant::new(&app, &root, "Acme").await;
    let id = tenant.device;
    let path = format!("/v1/devices/{id}/commands");

    let offline = app
        .post(&path, &tenant.admin, json!({"command_type": "unlock"}))
        .await;
    assert_problem(&offline, StatusCode::CONFLICT, "device_offline");

    // The device is online: it answers `unlock` and ignores `reboot`.
    let mut session = state.connections.register(id);
    let connections = state.connections.clone();
    let device = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(command) = session.commands.recv().await {
            seen.push((command.command_type.clone(), command.params.clone()));
            if command.command_type == "unlock" {
                connections.resolve(hse_devices::codec::CommandResult {
                    request_id: command.request_id,
                    success: true,
                    message: "opened".into(),
                });
            }
            if seen.len() == 2 {
                return seen;
            }
        }
        seen
    });
    let done = app
        .post(
            &path,
            &tenant.admin,
            json!({"command_type": "unlock", "params": {"seconds": 5}}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["success"], true);
    assert_eq!(done.body["message"], "opened");

    let silent = app
        .post(
            &path,
            &tenant.admin,
            json!({"command_type": "reboot", "timeout_ms": 50}),
        )
        .await;
    assert_problem(&silent, StatusCode::GATEWAY_TIMEOUT, "device_timeout");
    let seen = device.await.unwrap();
    assert_eq!(seen[0].0, "unlock");
    assert_eq!(seen[0].1["seconds"], 5);

    for (body, field) in [
        (json!({"command_type": "Not Valid"}), "command_type"),
        (
            json!({"command_type": "unlock", "timeout_ms": 0}),
            "timeout_ms",
        ),
        (
            json!({"command_type": "unlock", "timeout_ms": 30_000}),
            "timeout_ms",
        ),
        (json!({"command_type": "unlock", "extra": 1}), "body"),
    ] {
        let bad = app.post(&path, &tenant.admin, body).await;
        assert_problem(&bad, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(bad.body["field"], field);
    }
}

#[tokio::test]
async fn another_tenant_gets_404_for_every_device_route_and_sees_no_dead_letters() {
    let (app, state) = app().await;
    let root = app.root_token().await;
    let a = Tenant::new(&app, &root, "Acme").await;
    let b = Tenant::new(&app, &root, "Brava").await;
    let id = a.device;

    for path in [
        format!("/v1/devices/{id}/status"),
        format!("/v1/devices/{id}/events"),
        format!("/v1/devices/{id}/aggregates?bucket=hour&event_type=temperature"),
    ] {
        let answer = app.get(&path, &b.admin).await;
        assert_problem(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let command = app
        .post(
            &format!("/v1/devices/{id}/commands"),
            &b.admin,
            json!({"command_type": "unlock"}),
        )
        .await;
    assert_problem(&command, StatusCode::NOT_FOUND, "not_found");

    // A poison event of A's device: A and root see it, B does not.
    let event = readings(id, 1).remove(0);
    state
        .devices
        .dead_letters
        .add(&event, "SQLSTATE 22P02", 0)
        .await
        .unwrap();
    let listed = |token: String| {
        let app = &app;
        async move {
            let answer = app.get("/v1/dead-letters", &token).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            answer.body["items"].as_array().unwrap().clone()
        }
    };
    assert!(listed(b.admin.clone()).await.is_empty());
    assert_eq!(listed(root.clone()).await.len(), 1);
    let mine = listed(a.admin.clone()).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["event"]["device_id"], json!(id));
    let letter = mine[0]["id"].clone();

    let replay = |token: String| {
        let app = &app;
        let letter = letter.clone();
        async move {
            let answer = app
                .post("/v1/dead-letters/replay", &token, json!({"ids": [letter]}))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            answer.body["items"][0]["outcome"].clone()
        }
    };
    assert_eq!(replay(b.admin.clone()).await, "not_found");
    assert_eq!(replay(a.admin.clone()).await, "replayed");
    assert_eq!(replay(a.admin.clone()).await, "not_found", "replayed once");
    let stored = app.get(&format!("/v1/devices/{id}/events"), &a.admin).await;
    assert_eq!(stored.body["items"][0]["event_id"], json!(event.event_id));
    assert!(listed(root).await.is_empty());
}

#[tokio::test]
async fn the_openapi_document_describes_the_device_routes() {
    let (app, _) = app().await;
    let doc = app
        .call(axum::http::Method::GET, "/openapi.json", None, None)
        .await;
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/v1/devices/{id}/status",
        "/v1/devices/{id}/events",
        "/v1/devices/{id}/aggregates",
        "/v1/devices/{id}/commands",
        "/v1/dead-letters",
        "/v1/dead-letters/replay",
        "/v1/devices/ws",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let _: &Value = &doc.body["components"]["schemas"]["DeviceStatusView"];
}
