//! Certificate reload on the running binary: new connections see the new
//! certificate (its serial, read by `openssl s_client`), an open device
//! session keeps working, and a bad new file keeps the current one.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Pki, SClient, register_lock, start_tls};

/// Replaces `to` with `from` in one rename, as a certificate manager does.
fn replace(from: &Path, to: &Path) {
    let staged = to.with_extension("new");
    std::fs::copy(from, &staged).expect("staged");
    std::fs::rename(&staged, to).expect("renamed");
}

fn hangup(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Waits (up to `within`) until the listener at `addr` serves `serial`.
fn serves(pki: &Pki, addr: std::net::SocketAddr, serial: &str, within: Duration) -> bool {
    let started = Instant::now();
    loop {
        if pki.served_serial(addr) == serial {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_new_certificate_is_served_after_sighup_or_a_file_change_and_open_sessions_stay() {
    let pki = Pki::new("reload");
    let live = pki.issue("live");
    let server = start_tls(&live, &[]);
    let device_tcp = server.device_tcp.expect("ingest role");
    let first = pki.serial(&live.cert);
    assert_eq!(pki.served_serial(server.http), first);

    let (id, secret) = register_lock(&pki, &server);
    let mut device = SClient::connect(&pki, device_tcp);
    device.hello(&id, &secret);
    device.event_acked(1);

    // SIGHUP: every listener serves the new certificate at once.
    let second = pki.issue("second");
    replace(&second.key, &live.key);
    replace(&second.cert, &live.cert);
    hangup(server.pid());
    let serial = pki.serial(&live.cert);
    assert_ne!(serial, first);
    for addr in [server.http, device_tcp, server.grpc.expect("grpc role")] {
        assert!(
            serves(&pki, addr, &serial, Duration::from_secs(5)),
            "{addr}"
        );
    }
    device.event_acked(2);

    // A bad file keeps the current certificate.
    std::fs::write(&live.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("written");
    hangup(server.pid());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pki.served_serial(server.http), serial);

    // A changed file is read without a signal (polled every 2 s).
    let third = pki.issue("third");
    replace(&third.key, &live.key);
    replace(&third.cert, &live.cert);
    let serial = pki.serial(&live.cert);
    assert!(serves(&pki, server.http, &serial, Duration::from_secs(10)));
    device.event_acked(3);
    assert!(
        std::fs::metadata(pki.path("live.crt")).is_ok(),
        "the files stay where they were"
    );
}
