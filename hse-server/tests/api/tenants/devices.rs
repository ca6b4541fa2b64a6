//! Issue 13's device side over HTTP: raw door-code commands are refused,
//! a suspended tenant's devices take no commands, and its door codes wait
//! until it is reinstated.

use std::time::Duration;

use axum::http::StatusCode;
use hse_server::backends::Backends;
use serde_json::{Value, json};

use super::{establishment, id, lock, org_with_admin, patch, suspended};
use crate::client::{App, assert_problem};

#[tokio::test]
async fn raw_door_code_commands_are_refused_and_other_commands_go_through() {
    let mut state = None;
    let app = App::with_state(Backends::in_memory(), |s| state = Some(s.clone())).await;
    let state = state.expect("state");
    let root = app.root_token().await;
    let (org, admin) = org_with_admin(&app, &root, None, "admin@locks.example").await;
    let est = establishment(&app, &admin, &org, "Sol").await;
    let (_, lock) = lock(&app, &admin, &est).await;
    let device: hse_core::DeviceId = lock.parse().unwrap();
    let mut session = state.connections.register(device);
    let path = format!("/v1/devices/{lock}/commands");
    for kind in ["program_code", "remove_code", "delete_code", "set_pin"] {
        for token in [&admin, &root] {
            let sent = app
                .post(
                    &path,
                    token,
                    json!({"command_type": kind, "params": {"code": "000000", "slot": 1}}),
                )
                .await;
            assert_problem(&sent, StatusCode::FORBIDDEN, "reserved_command");
        }
    }
    // An ordinary command reaches the lock, and it is the first one it gets.
    let connections = state.connections.clone();
    let answered = tokio::spawn(async move {
        let command = session.commands.recv().await.expect("a command");
        connections.resolve(hse_devices::codec::CommandResult {
            request_id: command.request_id,
            success: true,
            message: "opened".into(),
        });
        command.command_type
    });
    let sent = app
        .post(&path, &admin, json!({"command_type": "unlock"}))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(answered.await.unwrap(), "unlock");
}

#[tokio::test]
async fn a_suspended_organizations_devices_take_no_commands() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let (org, admin) = org_with_admin(&app, &root, None, "admin@dark.example").await;
    let est = establishment(&app, &admin, &org, "Sol").await;
    let (_, lock) = lock(&app, &admin, &est).await;
    let path = format!("/v1/devices/{lock}/commands");
    let unlock = json!({"command_type": "unlock", "timeout_ms": 100});
    // Not connected: the command gets as far as the device registry.
    assert_problem(
        &app.post(&path, &root, unlock.clone()).await,
        StatusCode::CONFLICT,
        "device_offline",
    );
    patch(
        &app,
        &format!("/v1/organizations/{org}"),
        &root,
        suspended(false),
    )
    .await;
    let refused = app.post(&path, &root, unlock.clone()).await;
    assert_problem(&refused, StatusCode::CONFLICT, "tenant_suspended");
    patch(
        &app,
        &format!("/v1/organizations/{org}"),
        &root,
        suspended(true),
    )
    .await;
    assert_problem(
        &app.post(&path, &root, unlock).await,
        StatusCode::CONFLICT,
        "device_offline",
    );
}

#[tokio::test]
async fn the_workers_defer_a_suspended_tenants_door_codes_until_it_is_reinstated() {
    let mut state = None;
    let app = App::with_state(Backends::in_memory(), |s| state = Some(s.clone())).await;
    let state = state.expect("state");
    let root = app.root_token().await;
    let (org, admin) = org_with_admin(&app, &root, None, "admin@codes.example").await;
    let est = establishment(&app, &admin, &org, "Sol").await;
    let (area, lock) = lock(&app, &admin, &est).await;
    let guest = app
        .post(
            "/v1/guests",
            &admin,
            json!({"first_name": "Ana", "email": "ana@guest.example"}),
        )
        .await;
    let booking = app
        .post(
            "/v1/bookings",
            &admin,
            json!({"area_id": area, "guest_id": id(&guest),
                   "stay": {"check_in": "2030-06-01T14:00:00Z", "check_out": "2030-06-03T10:00:00Z"}}),
        )
        .await;
    let booking = id(&booking);
    let confirmed = app
        .post(
            &format!("/v1/bookings/{booking}/confirm"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    patch(
        &app,
        &format!("/v1/organizations/{org}"),
        &root,
        suspended(false),
    )
    .await;

    // The lock is online and acknowledges whatever it receives.
    let device: hse_core::DeviceId = lock.parse().unwrap();
    let mut session = state.connections.register(device);
    let connections = state.connections.clone();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(command) = session.commands.recv().await {
            let _ = seen_tx.send(command.command_type.clone());
            connections.resolve(hse_devices::codec::CommandResult {
                request_id: command.request_id,
                success: true,
                message: "ok".into(),
            });
        }
    });
    let tasks = tokio_util::task::TaskTracker::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = hse_server::Config::from_lookup(|_| None).unwrap();
    hse_server::bookings::spawn_workers(&config, &state, &tasks, &shutdown);

    let codes = format!("/v1/bookings/{booking}/doorlock-codes");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let code = app.get(&codes, &root).await.body["items"][0].clone();
    assert_ne!(
        code["state"], "active",
        "programmed while suspended: {code}"
    );
    assert!(
        seen.try_recv().is_err(),
        "the lock got a command while suspended"
    );

    patch(
        &app,
        &format!("/v1/organizations/{org}"),
        &root,
        suspended(true),
    )
    .await;
    let mut code = Value::Null;
    for _ in 0..200 {
        code = app.get(&codes, &root).await.body["items"][0].clone();
        if code["state"] == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(code["state"], "active", "{code}");
    assert_eq!(seen.recv().await.as_deref(), Some("program_code"));
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
}
