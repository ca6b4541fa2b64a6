//! Starts the real `hse-server` binary on free ports (`:0`), reads the
//! addresses it bound from its JSON logs, and stops it with a real SIGTERM.
//! A server still running when its handle is dropped (a failed test) is
//! killed.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::Api;

/// The root account every test signs in with.
pub(crate) const ROOT: &str = "root@hse.local";
/// Its password, given to the server as `HSE_ROOT_PASSWORD`.
pub(crate) const ROOT_PASSWORD: &str = "an end-to-end root passphrase";
/// The gRPC service token (`HSE_GRPC_TOKEN`).
pub(crate) const GRPC_TOKEN: &str = "an-end-to-end-grpc-service-token-0123456789";

/// A running `hse-server` process.
pub(crate) struct Server {
    child: Child,
    /// Its HTTP address.
    pub(crate) http: SocketAddr,
    /// Its gRPC address (`grpc` role).
    pub(crate) grpc: Option<SocketAddr>,
    /// Its device TCP address (`ingest` role).
    pub(crate) device_tcp: Option<SocketAddr>,
    /// Its latest log lines after the start-up ones.
    logs: Arc<Mutex<VecDeque<String>>>,
}

/// Starts the binary with a clean environment: free ports, JSON logs at
/// `info`, then `env` (which may override them). Waits until it listens.
pub(crate) fn start<K, V>(env: impl IntoIterator<Item = (K, V)>) -> Server
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_hse-server"));
    command
        .env_clear()
        .env("HSE_HTTP_ADDR", "127.0.0.1:0")
        .env("HSE_GRPC_ADDR", "127.0.0.1:0")
        .env("HSE_DEVICE_TCP_ADDR", "127.0.0.1:0")
        .env("HSE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let errors = drain_stderr(&mut child);
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let (mut grpc, mut device_tcp) = (None, None);
    let http = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait().expect("the server exited");
            let stderr = errors.lock().map(|e| e.clone()).unwrap_or_default();
            panic!("the server stopped before listening ({status}): {stderr}");
        };
        let Ok(log) = serde_json::from_str::<Value>(&line) else {
            continue; // the root account's announcement, not a log line
        };
        let fields = &log["fields"];
        grpc = grpc.or_else(|| address(&fields["grpc.addr"]));
        device_tcp = device_tcp.or_else(|| address(&fields["device_tcp.addr"]));
        if let Some(http) = address(&fields["http.addr"]) {
            break http;
        }
    };
    let logs = Arc::new(Mutex::new(VecDeque::new()));
    let kept = logs.clone();
    std::thread::spawn(move || {
        let mut count = 0;
        for line in lines.map_while(Result::ok) {
            if line.contains(r#""level":"WARN""#) || line.contains(r#""level":"ERROR""#) {
                count += 1;
                if count <= SHOWN_WARNINGS {
                    eprintln!("server: {line}");
                }
            }
            if let Ok(mut kept) = kept.lock() {
                if kept.len() == KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        }
        if count > SHOWN_WARNINGS {
            eprintln!("server: {count} warnings and errors in all");
        }
    });
    Server {
        child,
        http,
        grpc,
        device_tcp,
        logs,
    }
}

/// Log lines kept for [`Server::log_lines`], the latest.
const KEPT_LINES: usize = 10_000;

/// Server warnings and errors echoed into the test's output (shown when a
/// test fails); the rest are only counted.
const SHOWN_WARNINGS: usize = 10;

fn address(field: &Value) -> Option<SocketAddr> {
    field.as_str()?.parse().ok()
}

/// Collects the child's stderr (the reason it refused to start, if it did).
fn drain_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let collected = Arc::new(Mutex::new(String::new()));
    if let Some(mut stderr) = child.stderr.take() {
        let sink = collected.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            if let Ok(mut sink) = sink.lock() {
                *sink = text;
            }
        });
    }
    collected
}

impl Server {
    /// Its HTTP base URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// An anonymous HTTP client of it.
    pub(crate) fn api(&self) -> Api {
        Api::new(&self.url())
    }

    /// Its latest log lines (up to 10,000 after start-up), oldest first.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.logs
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (with `kill`, as an orchestrator would) and waits for
    /// the process to exit, at most `deadline`.
    pub(crate) async fn terminate(mut self, deadline: Duration) -> ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting works") {
                return status;
            }
            assert!(
                started.elapsed() < deadline,
                "the server did not exit within {deadline:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
