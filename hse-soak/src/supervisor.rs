//! A process supervisor in the manner of systemd's `Restart=always`,
//! `RestartSec=1`: whatever ends the process (SIGKILL, a start-up failure
//! while PostgreSQL is down), it is started again a second later. No step
//! of the soak restarts anything by hand.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// How long the supervisor waits before starting a process again.
const RESTART_SEC: Duration = Duration::from_secs(1);

/// A supervised process.
#[derive(Debug)]
pub(crate) struct Supervised {
    name: &'static str,
    pid: Arc<AtomicU32>,
    starts: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Supervised {
    /// Starts `program args` with `env`, logging to `log_dir/<name>.log`,
    /// and keeps it running until [`Supervised::stop`].
    pub(crate) fn start(
        name: &'static str,
        program: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> Self {
        let pid = Arc::new(AtomicU32::new(0));
        let starts = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let log = log_dir.join(format!("{name}.log"));
        let task = tokio::spawn(keep_running(
            name,
            Launch {
                program,
                args,
                env,
                log,
            },
            pid.clone(),
            starts.clone(),
            stop.clone(),
        ));
        Self {
            name,
            pid,
            starts,
            stop,
            task,
        }
    }

    /// Its current process id (0 between runs).
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// How many times it was started.
    pub(crate) fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    /// SIGKILLs the running process (the supervisor starts it again).
    pub(crate) async fn kill(&self) -> anyhow::Result<()> {
        match self.pid() {
            0 => anyhow::bail!("{} is not running", self.name),
            pid => crate::services::signal("KILL", &[pid]).await,
        }
    }

    /// Stops supervising: SIGTERM, then waits for the process to drain.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// How to start the process.
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

async fn keep_running(
    name: &'static str,
    launch: Launch,
    pid: Arc<AtomicU32>,
    starts: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log);
        let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let spawned = Command::new(&launch.program)
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!("soak: cannot start {name}: {e}");
                tokio::time::sleep(RESTART_SEC).await;
                continue;
            }
        };
        starts.fetch_add(1, Ordering::Relaxed);
        pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        tokio::select! {
            _ = child.wait() => {}
            () = stop.cancelled() => {
                if let Some(id) = child.id() {
                    let _ = crate::services::signal("TERM", &[id]).await;
                }
                if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
            }
        }
        pid.store(0, Ordering::Relaxed);
        if !stop.is_cancelled() {
            tokio::select! {
                () = tokio::time::sleep(RESTART_SEC) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}
