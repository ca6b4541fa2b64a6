//! Every Redis key a full run writes is under `HSE_REDIS_PREFIX`, so two
//! deployments can share one Redis: the whole story on a private
//! `redis-server` that reports every key written.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hyper::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::binary::{self, ROOT};
use crate::e2e::{story_env, the_whole_story};
use crate::services;

const STOP: Duration = Duration::from_secs(15);

/// A `redis-server` of the test's own, in a temporary directory on a free
/// port, publishing an event for every key written (`notify-keyspace-events
/// KEA`), so the test sees keys that expire before it could list them.
/// Killed on drop.
struct PrivateRedis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl PrivateRedis {
    /// Starts one, or `None` (the test skips, saying so) without
    /// `redis-server` on the `PATH`.
    fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("hse-selfhost-redis-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--maxmemory-policy", "noeviction"])
            .args(["--notify-keyspace-events", "KEA"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("SKIPPED: redis-server is not on the PATH");
            return None;
        };
        let redis = Self { child, dir, port };
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not listen on {port} within 10 s");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every key named in a keyspace event of `redis` from now on.
struct KeyLog {
    keys: Arc<Mutex<BTreeSet<String>>>,
    url: String,
}

impl KeyLog {
    async fn follow(url: &str) -> Self {
        let client = redis::Client::open(url).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe("__keyevent@*__:*").await.unwrap();
        let keys = Arc::new(Mutex::new(BTreeSet::new()));
        let sink = keys.clone();
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if let Ok(key) = message.get_payload::<String>() {
                    sink.lock().unwrap().insert(key);
                }
            }
        });
        Self {
            keys,
            url: url.to_owned(),
        }
    }

    /// The keys seen so far: writes `marker` and waits for its event, so
    /// every earlier event (Redis orders them) is in.
    async fn seen(&self, marker: &str) -> BTreeSet<String> {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let () = redis::cmd("SET")
            .arg(marker)
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        for _ in 0..200 {
            if self.keys.lock().unwrap().contains(marker) {
                return self.keys.lock().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the marker's keyspace event never arrived");
    }
}

#[sqlx::test(migrations = false)]
async fn every_redis_key_a_full_run_writes_is_under_the_prefix(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(redis) = PrivateRedis::start() else {
        return;
    };
    let mut env = services::env(&options).await;
    for (name, value) in &mut env {
        if *name == "HSE_REDIS_URL" {
            *value = redis.url();
        }
    }
    let prefix = services::value(&env, "HSE_REDIS_PREFIX").to_owned();
    let log = KeyLog::follow(&redis.url()).await;
    let env = story_env(env);

    the_whole_story(&env).await;
    // A wrong password, so sign-in failures are counted too.
    let server = binary::start(env.iter().map(|(k, v)| (*k, v)));
    let (status, body) = server
        .api()
        .send(
            Method::POST,
            "/v1/auth/login",
            Some(&json!({"email": ROOT, "password": "not the password"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(server.terminate(STOP).await.success());

    let keys = log.seen(&format!("{prefix}test-marker")).await;
    let outside: Vec<&String> = keys.iter().filter(|k| !k.starts_with(&prefix)).collect();
    assert!(
        outside.is_empty(),
        "keys outside {prefix}: {outside:?} (of {} written)",
        keys.len()
    );
    for part in ["events", "changes", "state:", "rl:", "fail:"] {
        let under = format!("{prefix}{part}");
        assert!(
            keys.iter().any(|k| k.starts_with(&under)),
            "the run wrote no {under}* key: {keys:?}"
        );
    }
}
