//! The server as an operator sees it: the real binary starts, answers its
//! health endpoints, refuses bad configuration by name, explains itself in
//! `--help`, and exits cleanly on SIGTERM.

use std::process::Command;
use std::time::Duration;

use hyper::{Method, StatusCode};

use crate::binary;

const STOP: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_embedded_server_is_alive_ready_and_stops_on_sigterm() {
    let server = binary::start::<&str, &str>([]);
    let api = server.api();
    let (status, body) = api
        .send(Method::GET, "/health/liveness", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .send(Method::GET, "/health/readiness", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["postgres"], "embedded", "{body}");
    let (status, _) = api.send(Method::GET, "/no/such/route", None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(server.terminate(STOP).await.success());
}

#[tokio::test]
async fn with_postgres_and_redis_readiness_checks_both() {
    // As scripts/services prints them: the application role, and the owner
    // to migrate with.
    let database = std::env::var("HSE_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://hse_app@127.0.0.1:5432/hse".into());
    let owner = std::env::var("HSE_DATABASE_MIGRATION_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/hse".into());
    let redis = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let server = binary::start([
        ("HSE_DATABASE_URL", &database),
        ("HSE_DATABASE_MIGRATION_URL", &owner),
        ("HSE_REDIS_URL", &redis),
    ]);
    let (status, body) = server
        .api()
        .send(Method::GET, "/health/readiness", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["postgres"], &body["redis"]),
        (&"up".into(), &"up".into()),
        "{body}"
    );
    assert!(server.terminate(STOP).await.success());
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    for (var, value) in [
        ("HSE_HTTP_ADDR", "not-an-address"),
        ("HSE_DATABASE_URL", "mysql://nope"),
        ("HSE_STAY_INTERVAL_MS", "soon"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_hse-server"))
            .env_clear()
            .env(var, value)
            .output()
            .expect("binary runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[test]
fn an_unreachable_database_stops_start_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_hse-server"))
        .env_clear()
        .env("HSE_HTTP_ADDR", "127.0.0.1:0")
        .env("HSE_GRPC_ADDR", "127.0.0.1:0")
        .env("HSE_DEVICE_TCP_ADDR", "127.0.0.1:0")
        .env("HSE_DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HSE_DATABASE_URL"));
}

#[test]
fn help_explains_commands_roles_and_every_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_hse-server"))
        .arg("--help")
        .output()
        .expect("binary runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let config = include_str!("../../src/config/mod.rs");
    let variables = config.split('`').filter(|word| {
        word.starts_with("HSE_")
            && word.len() > 4
            && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    });
    for needle in ["bootstrap-root", "--roles"].into_iter().chain(variables) {
        assert!(text.contains(needle), "{needle} missing from --help");
    }
}

#[test]
fn the_documented_error_codes_are_the_ones_the_server_returns() {
    let doc = include_str!("../../../docs/errors.md");
    let codes = doc.split("## Codes").nth(1).expect("a Codes section");
    let documented: Vec<&str> = codes
        .split("\n## ")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with("| 4") || line.starts_with("| 5"))
        .filter_map(|line| line.split('`').nth(1))
        .collect();
    let sources = [
        include_str!("../../src/http/error.rs"),
        include_str!("../../src/http/extract.rs"),
        include_str!("../../src/http/devices.rs"),
        include_str!("../../src/http/mod.rs"),
        include_str!("../../src/http/csrf.rs"),
    ]
    .concat();
    let returned: Vec<&str> = sources
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    for code in &documented {
        assert!(
            returned.contains(code),
            "docs/errors.md lists `{code}`, which the server never returns"
        );
    }
    for code in [
        "invalid_input",
        "unauthenticated",
        "not_found",
        "booking_conflict",
        "rate_limited",
        "unavailable",
    ] {
        assert!(
            documented.contains(&code),
            "`{code}` missing from docs/errors.md"
        );
    }
}
