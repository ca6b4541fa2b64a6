//! The Redis durability check at start-up.
//!
//! Device events are acknowledged once they are in the Redis stream, before
//! PostgreSQL holds them, so what Redis may lose is what an acknowledgement
//! is worth. At start-up the server reads three settings (`CONFIG GET`, or
//! `INFO` where `CONFIG` is disabled or not permitted, as on managed Redis)
//! and, per `HSE_REDIS_DURABILITY`, warns (`warn`, the default) or refuses
//! to start (`require`) when one of them can lose acknowledged data:
//!
//! | setting | safe | what an unsafe value loses |
//! |---|---|---|
//! | `appendonly` | `yes` | no: a Redis restart loses every event acknowledged but not yet stored, device state, dead letters and rate-limit counters (back to the last RDB snapshot, if any) |
//! | `appendfsync` | `always` | `everysec`: an OS crash or power loss loses up to about one second of acknowledged events (a Redis crash alone loses nothing) — warned, accepted by `require`; `no`: the OS flushes when it likes (typically up to 30 s) — refused by `require` |
//! | `maxmemory-policy` | `noeviction` | any eviction policy: under memory pressure Redis deletes keys, including streams of events not yet stored, silently |
//!
//! A setting that cannot be read (no `CONFIG`, and `INFO` does not show
//! `appendfsync`) is reported as unknown: a warning, or a refusal under
//! `require`, whose point is proof.

use std::collections::HashMap;

use redis::aio::ConnectionLike;

/// What start-up does about an unsafe Redis (`HSE_REDIS_DURABILITY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DurabilityMode {
    /// Log each finding as a warning and start (the default).
    #[default]
    Warn,
    /// Refuse to start on any finding that can lose acknowledged events.
    Require,
}

impl DurabilityMode {
    /// Parses `warn` or `require`.
    ///
    /// # Errors
    /// The reason, for anything else.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "warn" => Ok(Self::Warn),
            "require" => Ok(Self::Require),
            other => Err(format!("`{other}` is not `warn` or `require`")),
        }
    }
}

/// Redis's persistence settings as read (`None`: could not be read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `appendonly`: `yes` or `no`.
    pub appendonly: Option<String>,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: Option<String>,
    /// `maxmemory-policy`, e.g. `noeviction`.
    pub maxmemory_policy: Option<String>,
}

/// One setting that can lose acknowledged data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The Redis setting.
    pub setting: &'static str,
    /// Its value, or `unknown`.
    pub value: String,
    /// What it can lose.
    pub loses: &'static str,
    /// Whether `require` refuses to start over it.
    pub refused: bool,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Redis {} is {}: {}",
            self.setting, self.value, self.loses
        )
    }
}

const NO_AOF: &str = "a Redis restart loses every event acknowledged but not yet stored in PostgreSQL, device state, dead letters and rate-limit counters (set appendonly yes)";
const EVERYSEC: &str = "an OS crash or power loss can lose about the last second of acknowledged events (appendfsync always loses none)";
const FSYNC_NO: &str = "the OS flushes when it likes: an OS crash or power loss can lose tens of seconds of acknowledged events (set appendfsync always or everysec)";
const EVICTION: &str = "under memory pressure Redis deletes keys, including streams of acknowledged events not yet stored (set maxmemory-policy noeviction)";
const UNKNOWN: &str =
    "could not be read (CONFIG disabled or not permitted): durability cannot be verified";

/// The findings for `settings`, worst first; empty when nothing acknowledged
/// can be lost.
#[must_use]
pub fn assess(settings: &Settings) -> Vec<Finding> {
    let finding = |setting, value: &Option<String>, loses, refused| Finding {
        setting,
        value: value.clone().unwrap_or_else(|| "unknown".to_owned()),
        loses,
        refused,
    };
    let mut findings = Vec::new();
    match settings.appendonly.as_deref() {
        Some("yes") => {}
        Some(_) => findings.push(finding("appendonly", &settings.appendonly, NO_AOF, true)),
        None => findings.push(finding("appendonly", &None, UNKNOWN, true)),
    }
    match settings.appendfsync.as_deref() {
        Some("always") => {}
        Some("everysec") => findings.push(finding(
            "appendfsync",
            &settings.appendfsync,
            EVERYSEC,
            false,
        )),
        Some(_) => findings.push(finding(
            "appendfsync",
            &settings.appendfsync,
            FSYNC_NO,
            true,
        )),
        None => findings.push(finding("appendfsync", &None, UNKNOWN, true)),
    }
    match settings.maxmemory_policy.as_deref() {
        Some("noeviction") => {}
        Some(_) => findings.push(finding(
            "maxmemory-policy",
            &settings.maxmemory_policy,
            EVICTION,
            true,
        )),
        None => findings.push(finding("maxmemory-policy", &None, UNKNOWN, true)),
    }
    findings.sort_by_key(|f| !f.refused);
    findings
}

/// Reads the settings with `CONFIG GET`, falling back to `INFO` (which
/// shows `aof_enabled` and `maxmemory_policy`, not `appendfsync`) when
/// `CONFIG` is refused.
///
/// # Errors
/// When Redis answers neither.
pub async fn read_settings(conn: &mut impl ConnectionLike) -> redis::RedisResult<Settings> {
    let config: redis::RedisResult<HashMap<String, String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .arg("appendfsync")
        .arg("maxmemory-policy")
        .query_async(conn)
        .await;
    if let Ok(values) = config {
        return Ok(Settings {
            appendonly: values.get("appendonly").cloned(),
            appendfsync: values.get("appendfsync").cloned(),
            maxmemory_policy: values.get("maxmemory-policy").cloned(),
        });
    }
    let info: String = redis::cmd("INFO").query_async(conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    Ok(Settings {
        appendonly: field("aof_enabled").map(|v| if v == "1" { "yes" } else { "no" }.to_owned()),
        appendfsync: None,
        maxmemory_policy: field("maxmemory_policy"),
    })
}

/// Reads the settings and acts per `mode`: logs every finding, and under
/// [`DurabilityMode::Require`] fails on the first one that is refused.
/// Returns the findings.
///
/// # Errors
/// When Redis cannot be asked, or `require` refuses.
pub async fn enforce(
    conn: &mut impl ConnectionLike,
    mode: DurabilityMode,
) -> anyhow::Result<Vec<Finding>> {
    let settings = read_settings(conn)
        .await
        .map_err(|e| anyhow::anyhow!("HSE_REDIS_URL: cannot read Redis's settings: {e}"))?;
    let findings = assess(&settings);
    for finding in &findings {
        tracing::warn!(
            redis.setting = finding.setting,
            redis.value = %finding.value,
            "{finding}"
        );
    }
    if mode == DurabilityMode::Require
        && let Some(refused) = findings.iter().find(|f| f.refused)
    {
        anyhow::bail!(
            "HSE_REDIS_DURABILITY=require: {refused}; fix Redis or set HSE_REDIS_DURABILITY=warn"
        );
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(aof: &str, fsync: &str, policy: &str) -> Settings {
        Settings {
            appendonly: Some(aof.into()),
            appendfsync: Some(fsync.into()),
            maxmemory_policy: Some(policy.into()),
        }
    }

    #[test]
    fn the_safe_settings_have_no_finding() {
        assert!(assess(&settings("yes", "always", "noeviction")).is_empty());
    }

    #[test]
    fn everysec_is_warned_but_not_refused() {
        let findings = assess(&settings("yes", "everysec", "noeviction"));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].setting, "appendfsync");
        assert!(!findings[0].refused);
    }

    #[test]
    fn each_unsafe_setting_is_refused() {
        for (s, setting) in [
            (settings("no", "always", "noeviction"), "appendonly"),
            (settings("yes", "no", "noeviction"), "appendfsync"),
            (settings("yes", "always", "allkeys-lru"), "maxmemory-policy"),
        ] {
            let findings = assess(&s);
            assert_eq!(findings.len(), 1, "{s:?}");
            assert_eq!(findings[0].setting, setting);
            assert!(findings[0].refused);
        }
    }

    #[test]
    fn unknown_settings_are_refused_and_sorted_first() {
        let findings = assess(&Settings {
            appendonly: Some("yes".into()),
            appendfsync: None,
            maxmemory_policy: Some("noeviction".into()),
        });
        assert_eq!(findings[0].value, "unknown");
        assert!(findings[0].refused);
        let mixed = assess(&settings("yes", "everysec", "volatile-lru"));
        assert_eq!(mixed[0].setting, "maxmemory-policy");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(DurabilityMode::parse("warn"), Ok(DurabilityMode::Warn));
        assert_eq!(
            DurabilityMode::parse(" require"),
            Ok(DurabilityMode::Require)
        );
        assert!(DurabilityMode::parse("strict").is_err());
    }

    /// A private `redis-server` on a free port with `args`, killed on drop.
    struct PrivateRedis {
        child: std::process::Child,
        url: String,
        _dir: TempDir,
    }

    /// A directory removed on drop.
    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl PrivateRedis {
        fn start(args: &[&str]) -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir().join(format!("hse-redis-durability-{port}"));
            std::fs::create_dir_all(&dir).expect("a temp dir");
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .arg("--dir")
                .arg(&dir)
                .args(args)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server on PATH (scripts/services installs it)");
            Self {
                child,
                url: format!("redis://127.0.0.1:{port}"),
                _dir: TempDir(dir),
            }
        }

        async fn connection(&self) -> redis::aio::MultiplexedConnection {
            let client = redis::Client::open(self.url.as_str()).expect("a valid URL");
            for _ in 0..200 {
                if let Ok(conn) = client.get_multiplexed_async_connection().await {
                    return conn;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("private redis-server did not answer on {}", self.url);
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    const SAFE: [&str; 6] = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "noeviction",
    ];

    #[tokio::test]
    async fn a_durable_redis_passes_require() {
        let redis = PrivateRedis::start(&SAFE);
        let mut conn = redis.connection().await;
        let findings = enforce(&mut conn, DurabilityMode::Require).await.unwrap();
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[tokio::test]
    async fn require_refuses_what_warn_accepts() {
        let redis =
            PrivateRedis::start(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
        let mut conn = redis.connection().await;
        let findings = enforce(&mut conn, DurabilityMode::Warn).await.unwrap();
        let settings: Vec<_> = findings.iter().map(|f| f.setting).collect();
        assert!(settings.contains(&"appendonly"), "{findings:?}");
        assert!(settings.contains(&"maxmemory-policy"), "{findings:?}");
        let refused = enforce(&mut conn, DurabilityMode::Require)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("HSE_REDIS_DURABILITY=require"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn without_config_info_still_shows_aof_and_eviction() {
        let mut args = SAFE.to_vec();
        args.extend(["--rename-command", "CONFIG", ""]);
        let redis = PrivateRedis::start(&args);
        let mut conn = redis.connection().await;
        let settings = read_settings(&mut conn).await.unwrap();
        assert_eq!(settings.appendonly.as_deref(), Some("yes"));
        assert_eq!(settings.maxmemory_policy.as_deref(), Some("noeviction"));
        assert_eq!(settings.appendfsync, None);
        assert!(enforce(&mut conn, DurabilityMode::Warn).await.is_ok());
        let refused = enforce(&mut conn, DurabilityMode::Require)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("appendfsync is unknown"), "{refused}");
    }
}
