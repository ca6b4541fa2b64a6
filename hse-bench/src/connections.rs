//! Resident memory per idle device connection: the server side runs in
//! this process and its `VmRSS` is read before and after; the device side
//! runs in a child process (`hse-bench __hold-connections <addr>`), so its
//! sockets and buffers are not counted. Baseline: a bare tokio line server
//! (a task and a `BufReader` per connection) measured the same way, kept
//! open while HSE is measured so that no freed memory is reused. The
//! measuring server itself runs in a fresh process
//! (`hse-bench __connections-section`), so the heap history of the other
//! sections cannot hide growth.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::env::{Env, rss_kib};
use crate::pipeline::{Device, Pipeline};
use crate::report::{Figure, Report};

/// The hidden subcommand of the child that holds connections.
pub(crate) const HOLD_COMMAND: &str = "__hold-connections";

/// The hidden subcommand that measures in a fresh process.
pub(crate) const SECTION_COMMAND: &str = "__connections-section";

/// Runs the section in a fresh process and reports its figure.
pub(crate) async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(SECTION_COMMAND);
    if env.smoke {
        command.arg("--smoke");
    }
    let output = command.stderr(Stdio::inherit()).output().await?;
    anyhow::ensure!(output.status.success(), "{SECTION_COMMAND} failed");
    let measured: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let number = |k: &str| measured[k].as_f64().unwrap_or(0.0);
    let f = Figure::new(
        "connections",
        format!("RSS per idle device connection ({} held)", number("n")),
        number("per"),
        "KiB",
        format!("bare tokio line server ({} held)", number("n_bare")),
        number("bare_per"),
    );
    let met = f.value <= 20.0;
    report.add(f.target("≤ 20 KiB", met));
    Ok(())
}

/// The fresh process: measures and prints `{n, per, n_bare, bare_per}`.
pub(crate) async fn measure(env: &Env) -> anyhow::Result<()> {
    let (n, n_bare) = if env.smoke {
        (500, 500)
    } else {
        (10_000, 5_000)
    };
    let bare = bare_server().await?;
    let bare_devices: Vec<(String, String)> = (0..n_bare)
        .map(|i| (format!("bare-{i}"), "x".into()))
        .collect();
    let before = rss_kib()?;
    let bare_child = hold_in_child(bare, &bare_devices).await?;
    let bare_per = (rss_kib()?.saturating_sub(before)) as f64 / n_bare as f64;

    let pipeline = Pipeline::start(env, None).await?;
    let devices = pipeline.register(n)?;
    let creds: Vec<(String, String)> = devices.iter().map(creds).collect();
    let before = rss_kib()?;
    let child = hold_in_child(pipeline.addr, &creds).await?;
    let per = (rss_kib()?.saturating_sub(before)) as f64 / n as f64;
    release(child).await?;
    release(bare_child).await?;
    pipeline.stop().await?;
    let measured = serde_json::json!({"n": n, "per": per, "n_bare": n_bare, "bare_per": bare_per});
    println!("{measured}");
    Ok(())
}

fn creds(device: &Device) -> (String, String) {
    (device.id.to_string(), device.secret.expose().to_owned())
}

/// Starts the child, hands it the credentials, waits until it holds every
/// connection and the server has settled.
async fn hold_in_child(addr: SocketAddr, creds: &[(String, String)]) -> anyhow::Result<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(HOLD_COMMAND)
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("child stdin")?;
    let mut input = String::new();
    for (id, token) in creds {
        input.push_str(&format!("{id} {token}\n"));
    }
    input.push_str("end\n");
    stdin.write_all(input.as_bytes()).await?;
    let stdout = child.stdout.take().context("child stdout")?;
    let ready = tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
        .unwrap_or_default();
    anyhow::ensure!(
        ready == format!("ready {}", creds.len()),
        "connection holder: `{ready}`"
    );
    child.stdin = Some(stdin);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(child)
}

/// Closes the child's stdin (it then closes its connections and exits).
async fn release(mut child: Child) -> anyhow::Result<()> {
    drop(child.stdin.take());
    tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    Ok(())
}

/// A minimal line server: says welcome to the hello, then waits for lines.
async fn bare_server() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    if write.write_all(b"{\"type\":\"welcome\"}\n").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// The child: connects every device from stdin (`<id> <token>` lines up to
/// `end`), says hello, prints `ready <n>`, holds them until stdin closes.
pub(crate) fn hold(args: &[String]) -> anyhow::Result<()> {
    let addr: SocketAddr = args
        .first()
        .context("usage: __hold-connections <addr>")?
        .parse()?;
    let mut lines = std::io::stdin().lock().lines();
    let mut held = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        if line == "end" {
            break;
        }
        let (id, token) = line.split_once(' ').context("`<id> <token>`")?;
        let mut stream = TcpStream::connect(addr)?;
        let hello = serde_json::json!({"type":"hello","device_id":id,"token":token,"protocol":1});
        writeln!(stream, "{hello}")?;
        let mut welcome = String::new();
        BufReader::new(&stream).read_line(&mut welcome)?;
        anyhow::ensure!(welcome.contains("welcome"), "hello refused: {welcome}");
        held.push(stream);
    }
    println!("ready {}", held.len());
    std::io::stdout().flush()?;
    for line in lines {
        line?;
    }
    drop(held);
    Ok(())
}
