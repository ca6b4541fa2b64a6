//! Certificate reload: the files are read again on SIGHUP, and when
//! their modification time or size changes (looked at every
//! [`POLL_EVERY`]; a change is taken once it has held for one look, so a
//! certificate and key replaced one after the other are read together).
//!
//! New connections get the new certificate; open ones keep theirs. A file
//! that cannot be read, or a key that does not match, keeps the current
//! certificate and logs an error naming the file; the next change or
//! SIGHUP tries again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{Certificates, fingerprint};

/// How often the files' modification times are looked at.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// What a look at the two files saw: modification time and size of each
/// (`None` while a file is missing, as in the middle of a replacement).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp([Option<(SystemTime, u64)>; 2]);

impl Stamp {
    fn of(certificates: &Certificates) -> Self {
        let files = certificates.files();
        Self([look(&files.cert), look(&files.key)])
    }
}

fn look(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads `certificates` on SIGHUP and on file change, every `every` at
/// most, until `shutdown`.
pub async fn run_until_stopped(
    certificates: Arc<Certificates>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut hangup = hangups();
    let mut loaded = Stamp::of(&certificates);
    let mut changed: Option<Stamp> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = next_hangup(&mut hangup) => {
                loaded = Stamp::of(&certificates);
                changed = None;
                reload(&certificates, "SIGHUP");
            }
            _ = tick.tick() => {
                let now = Stamp::of(&certificates);
                if now == loaded {
                    changed = None;
                } else if changed.as_ref() == Some(&now) {
                    loaded = now;
                    changed = None;
                    reload(&certificates, "file change");
                } else {
                    changed = Some(now);
                }
            }
        }
    }
}

/// Reads the files again and says what happened.
fn reload(certificates: &Certificates, trigger: &'static str) {
    match certificates.reload() {
        Ok(key) => tracing::info!(
            tls.trigger = trigger,
            tls.fingerprint = %fingerprint(&key),
            "TLS certificate reloaded"
        ),
        Err(e) => tracing::error!(
            tls.trigger = trigger,
            error = %e,
            "TLS certificate not reloaded: the current one stays"
        ),
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: TLS files reload on change only");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    None
}

/// The next SIGHUP; never, without a handler.
async fn next_hangup(hangup: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        if signal.recv().await.is_some() {
            return;
        }
        *hangup = None;
    }
    #[cfg(not(unix))]
    let _ = hangup;
    std::future::pending::<()>().await;
}

/// Without TLS: answers SIGHUP (`systemctl reload`) with a log line
/// instead of the default of ending the process, until `shutdown`.
pub async fn ignore_hangups_until_stopped(shutdown: CancellationToken) {
    let mut hangup = hangups();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = next_hangup(&mut hangup) => {
                tracing::info!("SIGHUP: nothing to reload (no HSE_TLS_CERT)");
            }
        }
    }
}
