//! The soak's own PostgreSQL and Redis, in a temporary directory on free
//! ports, so faulting them never touches the shared services other tests
//! use. PostgreSQL refuses to run as root: as root, its commands run as
//! the `postgres` user through `runuser`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// Where Debian puts each PostgreSQL version's programs.
const PG_LIB: &str = "/usr/lib/postgresql";

/// PostgreSQL's programs: `HSE_SOAK_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` holding `initdb`, else the
/// directory of `initdb` on `PATH`.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("HSE_SOAK_PG_BIN") {
        return PathBuf::from(dir);
    }
    let newest = std::fs::read_dir(PG_LIB).ok().and_then(|versions| {
        versions
            .filter_map(|v| {
                let name = v.ok()?.file_name();
                let version: u32 = name.to_str()?.parse().ok()?;
                let bin = Path::new(PG_LIB).join(name).join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .max()
    });
    newest.map_or_else(PathBuf::new, |(_, bin)| bin)
}

/// A free loopback port (bound and released).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `program args` to completion; fails on a non-zero exit.
async fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Sends `signal` (e.g. `STOP`, `CONT`, `KILL`) to `pids`.
pub(crate) async fn signal(signal: &str, pids: &[u32]) -> anyhow::Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let mut args = vec![format!("-{signal}")];
    args.extend(pids.iter().map(u32::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("kill", &args).await
}

/// Whether this process runs as root (`Uid:` of /proc/self/status).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The children of `pid` (scanning /proc).
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A private PostgreSQL cluster.
#[derive(Debug)]
pub(crate) struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// `initdb` into `dir/pg` and starts it on a free port.
    pub(crate) async fn start(dir: &Path) -> anyhow::Result<Self> {
        let as_postgres = is_root();
        let pg = Self {
            bin: pg_bin(),
            data: dir.join("pg"),
            log: dir.join("postgres.log"),
            port: free_port()?,
            as_postgres,
        };
        if as_postgres {
            run("chown", &["postgres", &dir.display().to_string()]).await?;
        }
        let data = pg.data.display().to_string();
        pg.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .await
        .context(
            "initdb (is PostgreSQL 15+ installed? set HSE_SOAK_PG_BIN to its bin directory)",
        )?;
        pg.start_again().await?;
        Ok(pg)
    }

    /// Runs one of PostgreSQL's programs, as `postgres` when we are root.
    async fn pg(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(program).display().to_string();
        if self.as_postgres {
            let mut all = vec!["-u", "postgres", "--", path.as_str()];
            all.extend_from_slice(args);
            run("runuser", &all).await
        } else {
            run(&path, args).await
        }
    }

    /// Starts the cluster (after [`Postgres::crash`]).
    pub(crate) async fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on -c synchronous_commit=on",
            self.port,
            self.data.parent().unwrap_or(&self.data).display()
        );
        let (data, log) = (
            self.data.display().to_string(),
            self.log.display().to_string(),
        );
        self.pg(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .await
    }

    /// Stops it as a crash would (`-m immediate`: no checkpoint, WAL replay
    /// on the next start).
    pub(crate) async fn crash(&self) -> anyhow::Result<()> {
        let data = self.data.display().to_string();
        self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .await
    }

    /// Stops it cleanly.
    pub(crate) async fn stop(&self) -> anyhow::Result<()> {
        let data = self.data.display().to_string();
        self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .await
    }

    /// The postmaster and every backend (for SIGSTOP/SIGCONT).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let Some(postmaster) = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok())
        else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        pids.extend(children(postmaster));
        pids
    }

    /// Its address.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A superuser URL on `database`, straight to it (no proxy).
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// A private `redis-server` with `appendonly yes`, `appendfsync always`.
#[derive(Debug)]
pub(crate) struct Redis {
    dir: PathBuf,
    port: u16,
    child: tokio::sync::Mutex<Option<Child>>,
    pid: AtomicU32,
}

impl Redis {
    /// Starts it in `dir/redis` on a free port.
    pub(crate) async fn start(dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.join("redis");
        tokio::fs::create_dir_all(&dir).await?;
        let redis = Self {
            dir,
            port: free_port()?,
            child: tokio::sync::Mutex::new(None),
            pid: AtomicU32::new(0),
        };
        redis.start_again().await?;
        Ok(redis)
    }

    /// Starts it (after [`Redis::crash`]); the AOF is replayed.
    pub(crate) async fn start_again(&self) -> anyhow::Result<()> {
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
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        self.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        *self.child.lock().await = Some(child);
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("redis-server did not listen on {} within 10 s", self.addr())
    }

    /// SIGKILL, as a crash.
    pub(crate) async fn crash(&self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.lock().await.take() {
            child.kill().await?;
        }
        self.pid.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    /// Its address.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}
