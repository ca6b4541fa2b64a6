//! Several nodes of the real binary on one PostgreSQL (a fresh database)
//! and a Redis of the test's own (a `redis-server` on a free port in a
//! temporary directory, with an append-only file, so the test can restart
//! it): a command sent to one node reaches a lock connected to the other,
//! and still does a few seconds after Redis restarted; a lock that moved
//! to the other node while Redis was down leaves no session behind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::DurationRound;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::binary::{self, ROOT, ROOT_PASSWORD, Server};
use crate::e2e::code_when;
use crate::http::{Api, id};
use crate::line_device::{LineDevice, register_locks};
use crate::services;

/// How long the cluster may take to recover from a Redis restart.
const RECOVERY: Duration = Duration::from_secs(10);

/// A `redis-server` of the test's own, restartable on the same port.
pub(crate) struct OwnRedis {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one on a free port in a fresh temporary directory.
    pub(crate) async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hse-cluster-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let port = free_port();
        let mut redis = Self {
            dir,
            port,
            child: None,
        };
        redis.run().await;
        redis
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not listen on {}", self.addr());
    }

    /// Kills it (SIGKILL, a crash).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port; the append-only file is replayed.
    pub(crate) async fn start_again(&mut self) {
        self.run().await;
    }

    /// Kills it and starts it again.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        self.start_again().await;
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// How many connections are subscribed to `channel`.
    pub(crate) async fn subscribers(&self, channel: &str) -> i64 {
        let Ok(client) = redis::Client::open(self.url()) else {
            return 0;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return 0;
        };
        let counts: redis::RedisResult<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await;
        counts.map_or(0, |(_, n)| n)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The environment of node `name` on the test's database and `redis`;
/// every node shares the key prefix and the token signing key.
pub(crate) async fn node_env(
    options: &PgConnectOptions,
    redis: &OwnRedis,
    name: &str,
) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = services::env(options)
        .await
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "HSE_REDIS_URL" | "HSE_NODE_NAME" | "HSE_REDIS_PREFIX"))
        .collect();
    env.extend([
        ("HSE_REDIS_URL", redis.url()),
        ("HSE_REDIS_PREFIX", "hse-cluster:".to_owned()),
        ("HSE_NODE_NAME", name.to_owned()),
        // Shared, as a cluster's nodes must; HSE_PUBLIC_URL is left unset.
        ("HSE_JWT_SIGNING_KEY", "5e".repeat(32)),
        // Each node on its own address, as in a deployment (with `:0` the
        // default issuer would be the same string on both).
        ("HSE_HTTP_ADDR", format!("127.0.0.1:{}", free_port())),
        ("HSE_ROOT_PASSWORD", ROOT_PASSWORD.to_owned()),
        ("HSE_SHUTDOWN_TIMEOUT_S", "5".to_owned()),
    ]);
    env
}

/// Two full nodes on the test's database and `redis`, `a` started first
/// (it migrates the database).
async fn two_nodes(options: &PgConnectOptions, redis: &OwnRedis) -> (Server, Server) {
    let a = binary::start(node_env(options, redis, "cluster-a").await);
    let b = binary::start(node_env(options, redis, "cluster-b").await);
    (a, b)
}

/// A lock on its own task answering every command as done; its handle
/// yields the frames it received until the server closed the connection.
async fn answering_lock(addr: SocketAddr, lock: &str, secret: &str) -> JoinHandle<Vec<Value>> {
    let LineDevice { mut lines, mut out } = LineDevice::connect(addr, lock, secret)
        .await
        .expect("the lock is welcomed");
    tokio::spawn(async move {
        let mut received = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(frame) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if frame["type"] == "command" {
                let done = json!({"type": "command_result", "request_id": frame["request_id"],
                                  "success": true, "message": "done"});
                if out.write_all(format!("{done}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
            received.push(frame);
        }
        received
    })
}

/// `POST /v1/devices/{lock}/commands` (an unlock) on `api`: the status and
/// body.
async fn unlock(api: &Api, lock: &str) -> (StatusCode, Value) {
    api.send(
        Method::POST,
        &format!("/v1/devices/{lock}/commands"),
        Some(&json!({"command_type": "unlock", "params": {"seconds": 1}})),
    )
    .await
    .expect("the node answers")
}

/// Retries the unlock until it succeeds or `within` passed; the last answer.
async fn unlock_within(api: &Api, lock: &str, within: Duration) -> (StatusCode, Value) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let answer = unlock(api, lock).await;
        if answer.0 == StatusCode::OK || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The number of subscribers of `channel` once it is `want`, or the last
/// seen after `within`.
async fn subscribers_within(redis: &OwnRedis, channel: &str, want: i64, within: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let n = redis.subscribers(channel).await;
        if n == want || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_command_crosses_nodes_before_and_after_a_redis_restart(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut redis = OwnRedis::start().await;
    let (a, b) = two_nodes(&options, &redis).await;
    let root = a.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let (lock, secret) = register_locks(&root, 1).await.unwrap().remove(0);
    let signed_in = a
        .api()
        .post(
            "/v1/auth/login",
            json!({"email": ROOT, "password": ROOT_PASSWORD}),
            StatusCode::OK,
        )
        .await
        .unwrap();
    let token = signed_in["access_token"].as_str().expect("a token");
    let (status, body) = b
        .api()
        .with_token(token)
        .send(Method::GET, &format!("/v1/devices/{lock}/status"), None)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "node B accepts node A's token: {body}"
    );
    let on_b = answering_lock(b.device_tcp.expect("ingest role"), &lock, &secret).await;
    let commands = "hse-cluster:commands";
    assert_eq!(redis.subscribers(commands).await, 2, "both nodes listen");

    let (status, body) = unlock_within(&root, &lock, Duration::from_secs(5)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "node A reaches the lock on B: {body}"
    );
    assert_eq!(body["success"], true, "{body}");

    redis.restart().await;
    let listening = subscribers_within(&redis, commands, 2, RECOVERY).await;
    assert_eq!(listening, 2, "both nodes subscribed again");
    let (status, body) = unlock_within(&root, &lock, RECOVERY).await;
    assert_eq!(status, StatusCode::OK, "after the restart too: {body}");
    assert_eq!(body["success"], true, "{body}");

    drop((a, b));
    let frames = on_b.await.unwrap();
    let unlocks = frames.iter().filter(|f| f["type"] == "command").count();
    assert!(unlocks >= 2, "the lock got both unlocks: {frames:?}");
}

#[sqlx::test(migrations = false)]
async fn a_lock_that_moved_while_redis_was_down_leaves_no_session_behind(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut redis = OwnRedis::start().await;
    let (a, b) = two_nodes(&options, &redis).await;
    let root = a.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let (lock, secret) = register_locks(&root, 1).await.unwrap().remove(0);
    let old = answering_lock(b.device_tcp.expect("ingest role"), &lock, &secret).await;

    redis.kill();
    let new = answering_lock(a.device_tcp.expect("ingest role"), &lock, &secret).await;
    redis.start_again().await;

    let closed = tokio::time::timeout(RECOVERY, old)
        .await
        .expect("node B closes the older session once Redis is back")
        .unwrap();
    assert_eq!(
        closed.last().map(|f| (&f["type"], &f["code"])),
        Some((&json!("error"), &json!("replaced"))),
        "{closed:?}"
    );
    let (status, body) = unlock_within(&root, &lock, RECOVERY).await;
    assert_eq!(status, StatusCode::OK, "the newer session answers: {body}");
    drop((a, b));
    let frames = new.await.unwrap();
    assert!(frames.iter().any(|f| f["type"] == "command"), "{frames:?}");
}

/// An organization with one room per lock, a lock in each (registered as
/// `root`) and a guest to book them for.
pub(crate) struct Hotel {
    /// The rooms' area ids.
    pub(crate) rooms: Vec<String>,
    /// Each room's lock: its id and secret.
    pub(crate) locks: Vec<(String, String)>,
    /// The guest's id.
    pub(crate) guest: String,
}

pub(crate) async fn hotel(root: &Api, rooms: usize) -> Hotel {
    let org = root
        .post(
            "/v1/organizations",
            json!({"name": "Cluster Hotels"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let est = root
        .post(
            "/v1/establishments",
            json!({"organization_id": id(&org).unwrap(), "name": "Hotel", "timezone": "UTC"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let mut hotel = Hotel {
        rooms: Vec::new(),
        locks: Vec::new(),
        guest: String::new(),
    };
    for room in 1..=rooms {
        let area = root
            .post(
                "/v1/areas",
                json!({"establishment_id": id(&est).unwrap(), "name": format!("Room {room}"), "type": "room"}),
                StatusCode::CREATED,
            )
            .await
            .unwrap();
        let lock = root
            .post(
                "/v1/devices",
                json!({"area_id": id(&area).unwrap(), "device_type": "doorlock", "protocol": "hse-tcp"}),
                StatusCode::CREATED,
            )
            .await
            .unwrap();
        let secret = lock["secret"].as_str().expect("a secret").to_owned();
        hotel.rooms.push(id(&area).unwrap());
        hotel.locks.push((id(&lock).unwrap(), secret));
    }
    let guest = root
        .post(
            "/v1/guests",
            json!({"organization_id": id(&org).unwrap(), "first_name": "Ana", "email": "ana@guest.example"}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    hotel.guest = id(&guest).unwrap();
    hotel
}

/// Books `room` for two nights `day` days from now and confirms it; the
/// booking's id.
pub(crate) async fn confirmed_stay(api: &Api, hotel: &Hotel, room: usize, day: i64) -> String {
    let check_in = (chrono::Utc::now() + chrono::TimeDelta::days(day))
        .duration_trunc(chrono::TimeDelta::days(1))
        .unwrap()
        + chrono::TimeDelta::hours(14);
    let check_out = check_in + chrono::TimeDelta::hours(44);
    let booking = api
        .post(
            "/v1/bookings",
            json!({"area_id": hotel.rooms[room], "guest_id": hotel.guest,
                   "stay": {"check_in": check_in.to_rfc3339(), "check_out": check_out.to_rfc3339()}}),
            StatusCode::CREATED,
        )
        .await
        .unwrap();
    let booking = id(&booking).unwrap();
    api.post(
        &format!("/v1/bookings/{booking}/confirm"),
        json!({}),
        StatusCode::OK,
    )
    .await
    .unwrap();
    booking
}

/// Two full nodes and an api-only node (`HSE_ROLES=api`: no device
/// listener, no writer, no workers) on one PostgreSQL and Redis, a lock on
/// each full node: commands sent through the api-only node reach both
/// locks, before and after a Redis restart, and door codes booked through
/// it after the restart get to `active` on both locks. Either full node's
/// programmer may send a code; with two codes per lock, at least one
/// crosses nodes unless each node claimed exactly its own locks' codes.
#[sqlx::test(migrations = false)]
async fn an_api_only_node_reaches_locks_on_both_full_nodes_after_a_redis_restart(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let mut redis = OwnRedis::start().await;
    let (a, b) = two_nodes(&options, &redis).await;
    let mut env = node_env(&options, &redis, "cluster-api").await;
    env.push(("HSE_ROLES", "api".to_owned()));
    let api_node = binary::start(env);
    assert!(api_node.device_tcp.is_none() && api_node.grpc.is_none());
    let root = api_node.api().login(ROOT, ROOT_PASSWORD).await.unwrap();
    let hotel = hotel(&root, 2).await;
    let (on_a, on_b) = (&hotel.locks[0], &hotel.locks[1]);
    let lock_a = answering_lock(a.device_tcp.expect("ingest role"), &on_a.0, &on_a.1).await;
    let lock_b = answering_lock(b.device_tcp.expect("ingest role"), &on_b.0, &on_b.1).await;
    let commands = "hse-cluster:commands";
    let listening = redis.subscribers(commands).await;
    assert!(listening >= 2, "both full nodes listen: {listening}");

    for (lock, _) in [on_a, on_b] {
        let (status, body) = unlock_within(&root, lock, Duration::from_secs(5)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the api node reaches {lock}: {body}"
        );
        assert_eq!(body["success"], true, "{body}");
    }

    redis.restart().await;
    let again = subscribers_within(&redis, commands, listening, RECOVERY).await;
    assert_eq!(again, listening, "every node subscribed again");
    for (lock, _) in [on_a, on_b] {
        let (status, body) = unlock_within(&root, lock, RECOVERY).await;
        assert_eq!(status, StatusCode::OK, "after the restart, {lock}: {body}");
        assert_eq!(body["success"], true, "{body}");
    }
    let mut bookings = Vec::new();
    for (room, day) in [(0, 30), (1, 30), (0, 40), (1, 40)] {
        bookings.push(confirmed_stay(&root, &hotel, room, day).await);
    }
    for booking in &bookings {
        let code = code_when(&root, booking, |c| c["state"] == "active").await;
        assert_eq!(code["state"], "active", "the lock acknowledged it: {code}");
    }

    drop((a, b, api_node));
    for lock in [lock_a, lock_b] {
        let frames = lock.await.unwrap();
        let kinds: Vec<_> = frames
            .iter()
            .filter(|f| f["type"] == "command")
            .map(|f| f["command_type"].as_str().unwrap_or_default().to_owned())
            .collect();
        let unlocks = kinds.iter().filter(|k| *k == "unlock").count();
        assert!(unlocks >= 2, "{kinds:?}");
        assert!(kinds.iter().any(|k| k == "program_code"), "{kinds:?}");
    }
}
