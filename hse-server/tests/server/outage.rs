//! The real binary while PostgreSQL is down (a switchable TCP proxy in
//! front of the shared server, so nothing real stops) with a Redis of the
//! test's own: an ingest node starts without PostgreSQL, readiness says
//! per role what it can serve (ingest yes, the API no), devices are
//! acknowledged into Redis, and once PostgreSQL answers the node migrates,
//! creates root, serves the API and stores what it buffered.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::watch;

use crate::binary::{self, ROOT, ROOT_PASSWORD};
use crate::cluster::{OwnRedis, node_env};
use crate::http::Api;
use crate::line_device::{LineDevice, register_locks};

/// How long the node may take to notice PostgreSQL came back.
const RECOVERY: Duration = Duration::from_secs(30);

/// A TCP proxy to `target` that can be switched off: while off it drops
/// open connections and closes new ones at once, as a stopped server does.
async fn switchable_proxy(target: &str, on: bool) -> (u16, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (switch, _) = watch::channel(on);
    let sender = switch.clone();
    let target = target.to_owned();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let mut up = switch.subscribe();
            if !*up.borrow() {
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = up.wait_for(|on| !*on) => {}
                }
            });
        }
    });
    (port, sender)
}

/// `GET path`: the status and body.
async fn get(api: &Api, path: &str) -> (StatusCode, Value) {
    api.send(Method::GET, path, None).await.expect("an answer")
}

/// Waits until `GET path` answers `want`; the last answer.
async fn until(api: &Api, path: &str, want: StatusCode) -> (StatusCode, Value) {
    let deadline = tokio::time::Instant::now() + RECOVERY;
    loop {
        let answer = get(api, path).await;
        if answer.0 == want || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn an_ingest_node_starts_and_stays_ready_while_postgres_is_down(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let redis = OwnRedis::start().await;
    let (port, postgres) = switchable_proxy("127.0.0.1:5432", false).await;
    let env: Vec<(&'static str, String)> = node_env(&options, &redis, "outage")
        .await
        .into_iter()
        .map(|(k, v)| match k {
            "HSE_DATABASE_URL" | "HSE_DATABASE_MIGRATION_URL" => (
                k,
                v.replace("127.0.0.1:5432/", &format!("127.0.0.1:{port}/")),
            ),
            _ => (k, v),
        })
        .collect();
    let owner = env
        .iter()
        .find(|(k, _)| *k == "HSE_DATABASE_MIGRATION_URL")
        .map(|(_, v)| v.replace(&format!(":{port}/"), ":5432/"))
        .expect("the owner's URL");

    let node = binary::start(env);
    let api = node.api();
    let (status, body) = get(&api, "/health/readiness/ingest").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "ingest is ready without PostgreSQL: {body}"
    );
    let (status, body) = get(&api, "/health/readiness").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["unavailable"].as_array().is_some_and(|u| u
            .iter()
            .any(|r| r["role"] == "api" && r["needs"] == json!(["postgres"]))),
        "it says the API needs PostgreSQL: {body}"
    );
    assert_eq!(body["serving"], json!(["ingest"]), "{body}");

    postgres.send_replace(true);
    let (status, body) = until(&api, "/health/readiness", StatusCode::OK).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "ready once PostgreSQL answers: {body}"
    );
    let deadline = tokio::time::Instant::now() + RECOVERY;
    let root = loop {
        match api.login(ROOT, ROOT_PASSWORD).await {
            Ok(root) => break root,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "root is created: {e:#}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (lock, secret) = register_locks(&root, 1).await.unwrap().remove(0);
    let mut device = LineDevice::connect(node.device_tcp.expect("ingest role"), &lock, &secret)
        .await
        .expect("the lock is welcomed");

    postgres.send_replace(false);
    let (status, body) = until(&api, "/health/readiness", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = get(&api, "/health/readiness/ingest").await;
    assert_eq!(status, StatusCode::OK, "ingest stays ready: {body}");
    let events: Vec<Value> = (0..5)
        .map(|i| json!({"event_type": "temperature", "value": i}))
        .collect();
    device
        .send(&json!({"type": "events", "seq": 1, "events": events}))
        .await
        .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(10), device.recv())
        .await
        .expect("an answer in time")
        .unwrap()
        .expect("the connection is open");
    assert_eq!(
        (&ack["type"], &ack["seq"]),
        (&json!("ack"), &json!(1)),
        "{ack}"
    );

    postgres.send_replace(true);
    let pool = sqlx::PgPool::connect(&owner).await.unwrap();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM device_events")
            .fetch_one(&pool)
            .await
            .unwrap();
        if stored == 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stored {stored} of 5"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = get(&api, "/health/readiness/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(device);
}
