//! The server as an operator sees it: the real binary starts, answers its
//! health endpoints, refuses bad configuration by name, and exits cleanly
//! on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the binary with `env` and returns it with its HTTP address.
fn start(env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hse-server"));
    cmd.env_clear()
        .env("HSE_HTTP_ADDR", "127.0.0.1:0")
        .env("HSE_GRPC_ADDR", "127.0.0.1:0")
        .env("HSE_DEVICE_TCP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("utf-8 log line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or(rest)
                .trim_matches('"')
                .to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

fn terminate_and_wait(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_embedded_server_is_alive_ready_and_stops_on_sigterm() {
    let (child, addr) = start(&[]);
    let (status, body) = get(&addr, "/health/liveness").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&addr, "/health/readiness").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""postgres":"embedded""#), "{body}");
    let (status, _) = get(&addr, "/no/such/route").await;
    assert_eq!(status, 404);
    assert!(terminate_and_wait(child).success());
}

#[tokio::test]
async fn with_postgres_and_redis_readiness_checks_both() {
    let database = std::env::var("HSE_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let redis = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let (child, addr) = start(&[("HSE_DATABASE_URL", &database), ("HSE_REDIS_URL", &redis)]);
    let (status, body) = get(&addr, "/health/readiness").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""postgres":"up""#) && body.contains(r#""redis":"up""#),
        "{body}"
    );
    assert!(terminate_and_wait(child).success());
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    for (var, value) in [
        ("HSE_HTTP_ADDR", "not-an-address"),
        ("HSE_DATABASE_URL", "mysql://nope"),
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
fn help_explains_commands_roles_and_variables() {
    let output = Command::new(env!("CARGO_BIN_EXE_hse-server"))
        .arg("--help")
        .output()
        .expect("binary runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "bootstrap-root",
        "--roles",
        "HSE_DATABASE_URL",
        "HSE_HTTP_ADDR",
    ] {
        assert!(text.contains(needle), "{needle} missing from --help");
    }
}
