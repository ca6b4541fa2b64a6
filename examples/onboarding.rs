//! Run with: `cargo run --example onboarding`
//!
//! The onboarding story of seed section 6.2, entirely over HTTP: root
//! creates a partner company and invites its first user, who accepts and
//! signs in, creates an organization and invites its admin; the admin
//! builds an establishment with areas and devices.
//!
//! With `HSE_URL` (and `HSE_ROOT_EMAIL` / `HSE_ROOT_PASSWORD`) it talks to
//! that server; without, it starts an embedded in-memory server first.
//! Every run tags its emails and names (`--prefix`, random by default), so
//! it can run again on the same server; it prints the door locks' secrets
//! and the `device_simulator` command that connects them.

#[path = "support/http.rs"]
mod http;
#[path = "support/onboarding.rs"]
mod onboarding;

use anyhow::Context;

use onboarding::onboard;

/// What `--help` prints.
const USAGE: &str = "onboarding: the onboarding story over HTTP

root creates a partner company and invites its first user, who accepts, creates an
organization and invites its admin; the admin builds a hotel with a floor, two rooms
and a door lock in each.

Without HSE_URL it starts an embedded in-memory server first. Every email and name
carries a tag, so the story can run again on the same server (emails are unique), and
the door locks' secrets are printed with the device_simulator command using them.

USAGE:
    onboarding [--prefix TAG]    TAG: letters, digits, `-` (default: random)

ENVIRONMENT:
    HSE_URL             a running server to talk to, e.g. http://127.0.0.1:8080
    HSE_ROOT_EMAIL      its root account                     [root@hse.local]
    HSE_ROOT_PASSWORD   the root password it printed (required with HSE_URL)
    HSE_DEVICE_TCP_ADDR its device TCP address, for the printed command [127.0.0.1:7700]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let tag = tag()?;
    let (url, root_email, root_password, _server) = match std::env::var("HSE_URL") {
        Ok(url) => (
            url,
            std::env::var("HSE_ROOT_EMAIL").unwrap_or_else(|_| "root@hse.local".into()),
            std::env::var("HSE_ROOT_PASSWORD")
                .context("HSE_ROOT_PASSWORD is needed with HSE_URL")?,
            None,
        ),
        Err(_) => {
            let (url, password, server) = embedded_server().await?;
            (url, "root@hse.local".to_owned(), password, Some(server))
        }
    };
    let embedded = _server.is_some();
    run(&url, &root_email, &root_password, &tag, embedded).await
}

/// `--prefix TAG`, or a random one.
fn tag() -> anyhow::Result<String> {
    let mut args = std::env::args().skip(1);
    let mut tag = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--prefix" => tag = Some(args.next().context("--prefix needs a tag")?),
            other => anyhow::bail!("unexpected argument `{other}`\n\n{USAGE}"),
        }
    }
    let tag = tag.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
        format!("{:06x}", nanos & 0xff_ffff)
    });
    anyhow::ensure!(
        !tag.is_empty()
            && tag.len() <= 32
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "--prefix: 1 to 32 letters, digits or `-`"
    );
    Ok(tag.to_ascii_lowercase())
}

/// The whole story against the server at `url`, then what each user sees.
async fn run(
    url: &str,
    root_email: &str,
    root_password: &str,
    tag: &str,
    embedded: bool,
) -> anyhow::Result<()> {
    println!("tag {tag}: every email and name of this run carries it");
    let story = onboard(url, root_email, root_password, tag).await?;
    for room in &story.rooms {
        println!(
            "room {}: door lock {} secret {} (shown once: keep it)",
            room.area, room.lock, room.secret
        );
    }
    let tcp = std::env::var("HSE_DEVICE_TCP_ADDR").unwrap_or_else(|_| "127.0.0.1:7700".into());
    let devices: Vec<String> = story
        .rooms
        .iter()
        .map(|r| format!("--device {}:{}", r.lock, r.secret))
        .collect();
    if embedded {
        println!(
            "(the embedded server stops with this example; with HSE_URL the locks stay usable)"
        );
    }
    println!(
        "connect the locks: cargo run --example device_simulator -- --tcp {tcp} {}",
        devices.join(" ")
    );
    let devices = story.admin.get("/v1/devices").await?;
    println!(
        "admin sees {} devices in organization {}",
        devices["items"].as_array().map_or(0, Vec::len),
        story.organization
    );
    let (status, _) = story
        .partner
        .send(
            hyper::Method::GET,
            &format!("/v1/establishments/{}", story.establishment),
            None,
        )
        .await?;
    println!("partner reads the establishment: {status}");
    Ok(())
}

/// Starts an in-memory server on a free port with a known root password.
async fn embedded_server()
-> anyhow::Result<(String, String, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let password = "example root passphrase".to_owned();
    let lookup = |name: &str| match name {
        "HSE_HTTP_ADDR" => Some("127.0.0.1:0".to_owned()),
        "HSE_ROLES" => Some("api".to_owned()),
        _ => None,
    };
    let config = hse_server::Config::from_lookup(lookup)?;
    let server = hse_server::build(&config).await?;
    hse_server::bootstrap::bootstrap_root(server.state(), "root@hse.local", Some(password.clone()))
        .await?;
    let url = format!("http://{}", server.local_addr()?);
    let handle = tokio::spawn(server.run_until_stopped(std::future::pending()));
    println!("started an embedded server at {url}");
    Ok((url, password, handle))
}
