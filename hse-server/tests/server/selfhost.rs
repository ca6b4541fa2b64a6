//! Running it for real, as a self-hoster does: listen addresses may be
//! host names, a configuration file is read and overridden by the
//! environment, the shipped examples and systemd units are valid, the
//! README's PostgreSQL roles work, and start-up says what to do next for
//! the roles it runs. (Redis keys: `selfhost_redis`.)

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::binary::{self, ROOT, ROOT_PASSWORD};
use crate::services;

const STOP: Duration = Duration::from_secs(15);

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("hse-selfhost-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }

    /// Writes `text` to `name` in it; its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("the file is written");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment (free ports on loopback, JSON
/// logs), then `env`.
fn command<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hse-server"));
    command
        .env_clear()
        .env("HSE_HTTP_ADDR", "127.0.0.1:0")
        .env("HSE_GRPC_ADDR", "127.0.0.1:0")
        .env("HSE_DEVICE_TCP_ADDR", "127.0.0.1:0")
        .env("HSE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env)
        .args(args);
    command
}

/// A server started by [`start_saying`], and everything it printed on
/// standard output until it listened.
struct Said {
    child: Child,
    http: SocketAddr,
    lines: Vec<String>,
}

impl Said {
    fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// SIGTERM, then waits for a clean exit. A request is answered first:
    /// the server is then past installing its signal handler.
    fn stop(mut self) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.http).expect("the server listens");
        let request = "GET /health/liveness HTTP/1.1\r\nHost: hse\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = self.child.wait().expect("the server exits");
        assert!(status.success(), "{status}");
    }
}

impl Drop for Said {
    /// A server still running when the test fails is killed.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `command` and reads its output until it listens on HTTP.
fn start_saying(mut command: Command) -> Said {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut reader = BufReader::new(stdout).lines();
    let mut lines = Vec::new();
    let http = loop {
        let Some(Ok(line)) = reader.next() else {
            let status = child.wait().expect("the server exited");
            panic!("the server stopped before listening ({status}): {lines:#?}");
        };
        let addr = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|log| log["fields"]["http.addr"].as_str()?.parse().ok());
        lines.push(line);
        if let Some(addr) = addr {
            break addr;
        }
    };
    std::thread::spawn(move || reader.for_each(drop));
    Said { child, http, lines }
}

/// The binary's standard error when it refuses to start with `command`
/// (killed, and the test failed, if it is still running after 30 s).
fn refusal(mut command: Command) -> String {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting works") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("it started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "it started");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    stderr
}

#[tokio::test]
async fn listen_addresses_may_be_host_names() {
    let server = binary::start([
        ("HSE_HTTP_ADDR", "localhost:0"),
        ("HSE_GRPC_ADDR", "localhost:0"),
        ("HSE_DEVICE_TCP_ADDR", "localhost:0"),
    ]);
    assert!(server.http.ip().is_loopback(), "{}", server.http);
    let (status, body) = server
        .api()
        .send(Method::GET, "/health/liveness", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let device = server.device_tcp.expect("ingest role");
    assert!(tokio::net::TcpStream::connect(device).await.is_ok());
    assert!(server.grpc.expect("grpc role").ip().is_loopback());
    assert!(server.terminate(STOP).await.success());

    for (variable, value, reason) in [
        (
            "HSE_HTTP_ADDR",
            "no-such-host.invalid:8080",
            "does not resolve",
        ),
        ("HSE_DEVICE_TCP_ADDR", "localhost", "is not host:port"),
        ("HSE_GRPC_ADDR", "localhost:65536", "is not a port"),
    ] {
        let stderr = refusal(command([(variable, value)], &[]));
        assert!(
            stderr.contains(&format!("{variable}: `{value}`: ")) && stderr.contains(reason),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_config_file_configures_and_the_environment_overrides_it() {
    let dir = TempDir::new();
    let file = dir.file(
        "hse.toml",
        "# a self-hoster's file\nroot_email = \"from-file@hse.local\"\n\
         http_addr = \"localhost:0\"\nroles = [\"api\", \"ingest\"]\n",
    );
    let path = file.to_str().expect("a UTF-8 path");
    let sign_in = |email: &str| json!({"email": email, "password": ROOT_PASSWORD});
    for (env, signs_in, refused) in [
        (
            vec![("HSE_CONFIG", path), ("HSE_ROOT_PASSWORD", ROOT_PASSWORD)],
            "from-file@hse.local",
            ROOT,
        ),
        (
            vec![
                ("HSE_CONFIG", path),
                ("HSE_ROOT_PASSWORD", ROOT_PASSWORD),
                ("HSE_ROOT_EMAIL", "from-env@hse.local"),
            ],
            "from-env@hse.local",
            "from-file@hse.local",
        ),
    ] {
        let server = binary::start(env);
        assert!(server.grpc.is_none(), "the file's roles: no gRPC");
        let api = server.api();
        let (status, body) = api
            .send(Method::POST, "/v1/auth/login", Some(&sign_in(signs_in)))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{signs_in}: {body}");
        let (status, _) = api
            .send(Method::POST, "/v1/auth/login", Some(&sign_in(refused)))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
        assert!(server.terminate(STOP).await.success());
    }
}

#[test]
fn a_bad_config_file_names_the_file_and_the_key() {
    let dir = TempDir::new();
    for (text, said) in [
        (
            "redis_url = \"http://x\"\n",
            "redis_url: must start with redis://",
        ),
        (
            "shutdown_timeout_s = \"soon\"\n",
            "shutdown_timeout_s: `soon`",
        ),
        ("stay_interval_ms = 5\n", "stay_interval_ms: `5` is outside"),
        ("htp_addr = \"127.0.0.1:1\"\n", "htp_addr: unknown key"),
        (
            "[redis]\nurl = \"redis://x\"\n",
            "redis: tables are not used",
        ),
        ("http_addr = \n", "not valid TOML"),
    ] {
        let file = dir.file("hse.toml", text);
        let path = file.to_str().expect("a UTF-8 path");
        let stderr = refusal(command([], &["--config", path]));
        assert!(stderr.contains(&format!("{path}: {said}")), "{stderr}");
    }
    let missing = dir.0.join("missing.toml");
    let missing = missing.to_str().expect("a UTF-8 path");
    let stderr = refusal(command([("HSE_CONFIG", missing)], &[]));
    assert!(
        stderr.contains(&format!("HSE_CONFIG: cannot read {missing}")),
        "{stderr}"
    );
    // The environment's value is checked, and named, before the file's.
    let file = dir.file("hse.toml", "http_addr = \"127.0.0.1:0\"\n");
    let path = file.to_str().expect("a UTF-8 path");
    let stderr = refusal(command(
        [("HSE_CONFIG", path), ("HSE_HTTP_ADDR", "nowhere")],
        &[],
    ));
    assert!(stderr.contains("HSE_HTTP_ADDR: `nowhere`"), "{stderr}");
}

#[test]
fn the_shipped_configuration_examples_start_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let toml = root.join("deploy/hse.toml");
    let toml = toml.to_str().expect("a UTF-8 path");
    // The example as shipped, on free ports (the environment overrides it).
    let said = start_saying(command([("HSE_CONFIG", toml)], &[]));
    said.stop();
    let env_example = std::fs::read_to_string(root.join(".env.example")).unwrap();
    let mut env = Vec::new();
    for line in env_example.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').expect("NAME=value lines");
        assert!(name.starts_with("HSE_") || name == "RUST_LOG", "{line}");
        env.push((name.to_owned(), value.to_owned()));
    }
    // Only what needs no service: the example's URLs are placeholders.
    env.retain(|(name, _)| {
        !name.ends_with("_URL") && !name.ends_with("_ADDR") && name != "HSE_LOG_FORMAT"
    });
    let said = start_saying(command(
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &[],
    ));
    said.stop();
}

#[sqlx::test(migrations = false)]
async fn a_first_start_on_an_empty_database_says_how_to_create_root(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut env = services::env(&options).await;
    env.retain(|(name, _)| !name.starts_with("HSE_REDIS"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for start in ["first", "second"] {
        let said = start_saying(command(env.iter().copied(), &[]));
        let text = said.text();
        assert!(
            text.contains("no root account exists") && text.contains("hse-server bootstrap-root"),
            "{start} start: {text}"
        );
        assert!(
            !text.contains("already exists, skipping"),
            "{start} start: {text}"
        );
        assert!(
            !text.contains("sign in: curl"),
            "nobody can sign in yet: {text}"
        );
        said.stop();
    }
    let output = command(env.iter().copied(), &["bootstrap-root"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    let password = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .expect("the generated password, once")
        .to_owned();
    let said = start_saying(command(env.iter().copied(), &[]));
    assert!(!said.text().contains("no root account"), "{}", said.text());
    let api = crate::http::Api::new(&format!("http://{}", said.http));
    let (status, body) = api
        .send(
            Method::POST,
            "/v1/auth/login",
            Some(&json!({"email": ROOT, "password": password})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    said.stop();
}

#[test]
fn without_the_api_role_start_up_offers_no_sign_in() {
    let all = start_saying(command([], &[]));
    assert!(all.text().contains("sign in: curl"), "{}", all.text());
    all.stop();
    for args in [&["--roles", "ingest,workers"][..], &["--roles=grpc"][..]] {
        let said = start_saying(command([], args));
        let text = said.text();
        assert!(!text.contains("sign in"), "{args:?}: {text}");
        assert!(!text.contains("password"), "{args:?}: {text}");
        said.stop();
    }
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = std::fs::read_to_string(root.join("deploy/hse.toml")).unwrap();
    let drain: u64 = config
        .lines()
        .find_map(|l| l.strip_prefix("shutdown_timeout_s = "))
        .map_or(Ok(10), str::parse)
        .unwrap();
    let dir = TempDir::new();
    let mut units = Vec::new();
    for name in ["hse.service", "hse-api.service", "hse-ingest.service"] {
        let text = std::fs::read_to_string(root.join("deploy/systemd").join(name)).unwrap();
        for setting in [
            "ExecStart=/usr/local/bin/hse-server serve ",
            "EnvironmentFile=/etc/hse/hse.env",
            "DynamicUser=yes",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "LimitNOFILE=",
            "Restart=on-failure",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(setting)),
                "{name} lacks {setting}"
            );
        }
        let stop: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .expect("TimeoutStopSec")
            .parse()
            .unwrap();
        assert!(
            stop > drain,
            "{name}: TimeoutStopSec={stop} <= drain {drain} s"
        );
        // verify checks that ExecStart exists: the binary under test.
        let text = text.replace(
            "/usr/local/bin/hse-server",
            env!("CARGO_BIN_EXE_hse-server"),
        );
        units.push(dir.file(name, &text));
    }
    let Ok(output) = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
    else {
        eprintln!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}

/// The README's PostgreSQL recipe, on a database of its own: a schema
/// owner that is no superuser migrates at start, an application role in
/// `hse_app_group` serves, readiness sees PostgreSQL up.
#[tokio::test]
async fn the_readme_postgres_roles_migrate_and_serve() {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = base.rsplit_once('/').expect("a database URL");
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let tag = Uuid::now_v7().simple().to_string();
    let (owner, app, database) = (
        format!("hse_owner_{tag}"),
        format!("hse_app_{tag}"),
        format!("hse_readme_{tag}"),
    );
    for statement in [
        format!("CREATE ROLE {owner} LOGIN PASSWORD 'owner-secret'"),
        format!("CREATE DATABASE {database} OWNER {owner}"),
        "DO $$ BEGIN CREATE ROLE hse_app_group NOLOGIN NOSUPERUSER NOBYPASSRLS; \
         EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            .to_owned(),
        format!(
            "CREATE ROLE {app} LOGIN PASSWORD 'app-secret' NOSUPERUSER NOBYPASSRLS IN ROLE hse_app_group"
        ),
    ] {
        sqlx::raw_sql(&statement).execute(&admin).await.unwrap();
    }
    let host = server.rsplit_once('@').map_or(server, |(_, h)| h);
    let owner_url = format!("postgres://{owner}:owner-secret@{host}/{database}");
    let app_url = format!("postgres://{app}:app-secret@{host}/{database}");
    let started = binary::start([
        ("HSE_DATABASE_MIGRATION_URL", owner_url.as_str()),
        ("HSE_DATABASE_URL", app_url.as_str()),
    ]);
    let (status, body) = started
        .api()
        .send(Method::GET, "/health/readiness", None)
        .await
        .unwrap();
    assert!(started.terminate(STOP).await.success());
    for statement in [
        format!("DROP DATABASE {database} WITH (FORCE)"),
        format!("DROP ROLE {app}"),
        format!("DROP ROLE {owner}"),
    ] {
        sqlx::raw_sql(&statement).execute(&admin).await.unwrap();
    }
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["postgres"], "up", "{body}");
}

#[tokio::test]
async fn the_onboarding_story_runs_again_under_another_tag() {
    let server = binary::start([("HSE_ROOT_PASSWORD", ROOT_PASSWORD)]);
    for tag in ["first", "second"] {
        let story = crate::onboarding::onboard(&server.url(), ROOT, ROOT_PASSWORD, tag)
            .await
            .expect(tag);
        assert_eq!(story.rooms.len(), 2);
        assert!(story.rooms.iter().all(|room| room.secret.len() >= 32));
    }
    // The same tag again collides with the first run's emails.
    let again = crate::onboarding::onboard(&server.url(), ROOT, ROOT_PASSWORD, "first").await;
    assert!(again.is_err(), "the emails are unique");
    assert!(server.terminate(STOP).await.success());
}
