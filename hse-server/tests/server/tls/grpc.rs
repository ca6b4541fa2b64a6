//! gRPC over TLS from Python (grpcio, grpcio-health-checking,
//! grpcio-reflection from PyPI; `scripts/test` installs them and runs
//! this ignored test): health per service, reflection v1 and v1alpha, a
//! device-service call built from the reflected descriptor, and
//! `NOT_SERVING` to a health watcher once the server drains.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

use super::{Pki, SClient, register_lock, start_tls};

#[tokio::test]
#[ignore = "needs python3 with grpcio, grpcio-health-checking and grpcio-reflection; scripts/test runs it"]
async fn python_grpc_clients_check_health_and_reflect_over_tls() {
    let pki = Pki::new("grpc");
    let server = start_tls(&pki.issue("server"), &[]);
    let (id, secret) = register_lock(&pki, &server);
    let mut device = SClient::connect(&pki, server.device_tcp.expect("ingest role"));
    device.hello(&id, &secret);
    device.event_acked(1);

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/server/python/grpc_tls.py"
    );
    let grpc = server.grpc.expect("grpc role").to_string();
    let mut python = Command::new("python3")
        .arg(script)
        .arg(&pki.ca)
        .args([&grpc, &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let stdout = python.stdout.take().expect("piped");
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = Vec::new();
    while !said.iter().any(|l| l == "WATCHING") {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => said.push(line),
            Err(_) => {
                let out = python.wait_with_output().expect("python ends");
                panic!(
                    "python stopped before watching: {said:?}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    drop(device);
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    let out = python.wait_with_output().expect("python ends");
    said.extend(lines.iter());
    assert!(
        out.status.success() && said.iter().any(|l| l == "DRAINED"),
        "{said:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said[..2], ["HEALTH OK", "REFLECTION OK"], "{said:?}");
}
