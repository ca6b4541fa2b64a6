//! TLS on the real binary's three listeners, with real clients: `curl
//! --cacert` on the HTTP API, `openssl s_client` speaking the device
//! protocol, Python grpcio on gRPC (with the health and reflection
//! services, `grpc.rs`); certificate reload on SIGHUP and on file change
//! (`reload.rs`); a plain-text or silent client on a TLS port is closed
//! and gives its place back; a missing file or a foreign key stops
//! start-up naming the variable or the file key.
//!
//! The certificates come from a throw-away CA the `openssl` command makes
//! per test ([`Pki`]).

mod grpc;
mod reload;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::{self, ROOT, ROOT_PASSWORD, Server};
use crate::device_tls::DeviceTls;

/// A throw-away certificate authority and the server certificates it
/// issued, in a directory of their own.
pub(crate) struct Pki {
    dir: PathBuf,
    /// The CA certificate clients trust.
    pub(crate) ca: PathBuf,
}

/// A server certificate for `localhost` and `127.0.0.1`, and its key.
pub(crate) struct Issued {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

impl Pki {
    /// A new CA under the temporary directory.
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hse-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend(EC);
        args.extend([
            "-subj",
            "/CN=HSE test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&args, &dir);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions file");
        Self {
            ca: dir.join("ca.crt"),
            dir,
        }
    }

    /// Issues a server certificate as `<stem>.crt` and `<stem>.key`.
    pub(crate) fn issue(&self, stem: &str) -> Issued {
        let (crt, key, csr) = (
            format!("{stem}.crt"),
            format!("{stem}.key"),
            format!("{stem}.csr"),
        );
        let mut args = vec!["req", "-nodes"];
        args.extend(EC);
        args.extend(["-subj", "/CN=localhost", "-keyout", &key, "-out", &csr]);
        openssl(&args, &self.dir);
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                &crt,
            ],
            &self.dir,
        );
        Issued {
            cert: self.dir.join(crt),
            key: self.dir.join(key),
        }
    }

    /// A path in the directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The serial number of the certificate file `cert`.
    pub(crate) fn serial(&self, cert: &Path) -> String {
        let cert = cert.to_str().expect("UTF-8 path");
        openssl(&["x509", "-noout", "-serial", "-in", cert], &self.dir)
            .trim()
            .to_owned()
    }

    /// The serial number of the certificate `addr` presents to a new
    /// connection that verifies it against the CA.
    pub(crate) fn served_serial(&self, addr: SocketAddr) -> String {
        let connect = addr.to_string();
        let ca = self.ca.to_str().expect("UTF-8 path");
        let shown = Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-servername", "localhost"])
            .args(["-CAfile", ca, "-verify_return_error"])
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client runs");
        assert!(
            shown.status.success(),
            "s_client: {}",
            String::from_utf8_lossy(&shown.stderr)
        );
        let mut x509 = Command::new("openssl")
            .args(["x509", "-noout", "-serial"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl x509 runs");
        x509.stdin
            .take()
            .expect("piped")
            .write_all(&shown.stdout)
            .expect("certificate written");
        let out = x509.wait_with_output().expect("openssl x509 ends");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// Starts the binary with `issued` as its certificate, then `env`.
pub(crate) fn start_tls(issued: &Issued, env: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("HSE_TLS_CERT", issued.cert.to_str().expect("UTF-8 path")),
        ("HSE_TLS_KEY", issued.key.to_str().expect("UTF-8 path")),
        ("HSE_ROOT_PASSWORD", ROOT_PASSWORD),
    ];
    all.extend_from_slice(env);
    binary::start(all)
}

/// `curl --cacert` to `https://localhost:<port><path>` (resolved to the
/// server's address); the status and the JSON answer (`Null` if none).
/// `Err` with curl's message when no HTTP answer came.
pub(crate) fn curl(
    pki: &Pki,
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let port = server.http.port();
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&pki.ca)
        .args([
            "--resolve",
            &format!("localhost:{port}:{}", server.http.ip()),
        ])
        .args(["-X", method, "-w", "\n%{http_code}"])
        .arg(format!("https://localhost:{port}{path}"));
    if let Some(token) = token {
        command.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    if let Some(body) = body {
        command
            .args(["-H", "content-type: application/json", "--data"])
            .arg(body.to_string());
    }
    let out = command.output().expect("curl runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_ref()));
    let status = status.trim().parse().map_err(|e| format!("{e}: {text}"))?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// Registers a door lock over HTTPS as root; its id and secret.
pub(crate) fn register_lock(pki: &Pki, server: &Server) -> (String, String) {
    let login = json!({"email": ROOT, "password": ROOT_PASSWORD});
    let (status, answer) = curl(pki, server, "POST", "/v1/auth/login", None, Some(&login)).unwrap();
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().expect("a token").to_owned();
    let create = |path: &str, body: Value| {
        let (status, answer) = curl(pki, server, "POST", path, Some(&token), Some(&body)).unwrap();
        assert_eq!(status, 201, "POST {path}: {answer}");
        answer
    };
    let org = create("/v1/organizations", json!({"name": "TLS Hotels"}));
    let est = create(
        "/v1/establishments",
        json!({"organization_id": org["id"], "name": "Hotel", "timezone": "UTC"}),
    );
    let area = create(
        "/v1/areas",
        json!({"establishment_id": est["id"], "name": "Room 1", "type": "room"}),
    );
    let lock = create(
        "/v1/devices",
        json!({"area_id": area["id"], "device_type": "doorlock", "protocol": "hse-tcp"}),
    );
    let id = lock["id"].as_str().expect("an id").to_owned();
    (id, lock["secret"].as_str().expect("a secret").to_owned())
}

/// A device session through `openssl s_client`: lines in, lines out.
pub(crate) struct SClient {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl SClient {
    /// Connects to `addr`, verifying its certificate for `localhost`
    /// against the CA.
    pub(crate) fn connect(pki: &Pki, addr: SocketAddr) -> Self {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-verify_return_error",
                "-servername",
                "localhost",
            ])
            .args(["-connect", &addr.to_string(), "-CAfile"])
            .arg(&pki.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one frame.
    pub(crate) fn send(&mut self, frame: &Value) {
        writeln!(self.stdin, "{frame}").expect("frame written");
        self.stdin.flush().expect("frame flushed");
    }

    /// The next frame, within 10 s.
    pub(crate) fn recv(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a frame from the server");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Says hello as the device and expects the welcome.
    pub(crate) fn hello(&mut self, id: &str, secret: &str) {
        self.send(&json!({"type": "hello", "device_id": id, "token": secret, "protocol": 1}));
        let welcome = self.recv();
        assert_eq!(welcome["type"], "welcome", "{welcome}");
    }

    /// Sends one temperature event as `seq` and expects its ack.
    pub(crate) fn event_acked(&mut self, seq: u64) {
        self.send(
            &json!({"type": "event", "seq": seq, "event_type": "temperature", "value": 21.5}),
        );
        let ack = self.recv();
        assert_eq!(
            (ack["type"].as_str(), ack["seq"].as_u64()),
            (Some("ack"), Some(seq)),
            "{ack}"
        );
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `bytes` (maybe none) to `addr` and reads what comes back until
/// the server closes; `None` if it is still open after `within`.
fn closed_after(addr: SocketAddr, bytes: &[u8], within: Duration) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).expect("TCP connects");
    stream.write_all(bytes).expect("bytes written");
    stream.set_read_timeout(Some(within)).expect("timeout set");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(answer),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(answer),
        Err(_) => None,
    }
}

#[test]
fn curl_checks_liveness_over_https_and_a_device_speaks_through_openssl() {
    let pki = Pki::new("serve");
    let server = start_tls(&pki.issue("server"), &[]);
    let (status, body) = curl(&pki, &server, "GET", "/health/liveness", None, None).unwrap();
    assert_eq!(status, 200, "{body}");

    let (id, secret) = register_lock(&pki, &server);
    let mut device = SClient::connect(&pki, server.device_tcp.expect("ingest role"));
    device.hello(&id, &secret);
    device.event_acked(1);
    device.send(&json!({"type": "ping"}));
    assert_eq!(device.recv()["type"], "pong");
}

/// The device simulator's own TLS client (`device_simulator --tls-ca`):
/// acknowledged when it trusts the CA and checks the served name, refused
/// in the handshake when the name it expects is not the certificate's.
#[test]
fn the_device_simulators_tls_client_is_acknowledged_and_checks_the_name() {
    let pki = Pki::new("simulator");
    let server = start_tls(&pki.issue("server"), &[]);
    let (id, secret) = register_lock(&pki, &server);
    let addr = server.device_tcp.expect("ingest role");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let tls = DeviceTls::new(&pki.ca, "localhost").expect("the CA loads");
        let mut lock = tls
            .connect(addr, &id, &secret)
            .await
            .expect("welcomed over TLS");
        let frame = json!({"type": "events", "seq": 1, "events": [
            {"event_type": "temperature", "value": 21.5, "unit": "C"},
            {"event_type": "temperature", "value": 21.7, "unit": "C"},
        ]});
        lock.send(&frame).await.expect("sent");
        let ack = lock.recv().await.expect("readable").expect("an answer");
        assert_eq!(
            (ack["type"].as_str(), ack["seq"].as_u64()),
            (Some("ack"), Some(1)),
            "{ack}"
        );

        let elsewhere = DeviceTls::new(&pki.ca, "elsewhere.example").expect("the CA loads");
        let refused = elsewhere.connect(addr, &id, &secret).await;
        let message = format!("{:#}", refused.err().expect("a foreign name is refused"));
        assert!(message.contains("TLS handshake"), "{message}");
    });
}

#[test]
fn plain_text_on_a_tls_port_is_closed_and_a_silent_client_frees_its_place() {
    let pki = Pki::new("plain");
    let server = start_tls(
        &pki.issue("server"),
        &[
            ("HSE_MAX_CONNECTIONS_PER_IP", "1"),
            ("HSE_HEADER_TIMEOUT_MS", "3000"),
            ("HSE_DEVICE_HELLO_TIMEOUT_MS", "3000"),
        ],
    );
    let quick = Duration::from_secs(2);
    let http = b"GET /health/liveness HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let answer = closed_after(server.http, http, quick).expect("plain HTTP is closed");
    assert!(!answer.starts_with(b"HTTP/"), "answered in plain text");
    let hello = b"{\"type\":\"hello\"}\n";
    let device_tcp = server.device_tcp.expect("ingest role");
    let answer = closed_after(device_tcp, hello, quick).expect("a plain device is closed");
    assert!(
        !answer.contains(&b'{'),
        "the device port answered in plain text"
    );
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let grpc = server.grpc.expect("grpc role");
    closed_after(grpc, preface, quick).expect("plain gRPC is closed");

    // A client that never starts its handshake holds the only place of
    // its address for the handshake timeout, then it is closed.
    let mut silent = TcpStream::connect(server.http).expect("TCP connects");
    let opened = std::time::Instant::now();
    assert!(curl(&pki, &server, "GET", "/health/liveness", None, None).is_err());
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout set");
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).expect("closed by the server");
    assert!(
        opened.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        opened.elapsed()
    );
    let (status, _) = curl(&pki, &server, "GET", "/health/liveness", None, None)
        .expect("the place is free again");
    assert_eq!(status, 200);
    let silent_device = closed_after(device_tcp, b"", Duration::from_secs(10));
    assert!(silent_device.is_some(), "a silent device is closed");
}

/// Runs the binary with `env` only and returns what it said on stderr;
/// it must refuse to start.
fn refused(env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hse-server"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_file_or_a_foreign_key_stops_start_up_naming_the_key() {
    let pki = Pki::new("refuse");
    let server = pki.issue("server");
    let other = pki.issue("other");
    let (cert, key) = (server.cert.to_str().unwrap(), server.key.to_str().unwrap());
    let missing = pki.path("missing.pem");
    let said = refused(&[
        ("HSE_TLS_CERT", missing.to_str().unwrap()),
        ("HSE_TLS_KEY", key),
    ]);
    assert!(
        said.contains("HSE_TLS_CERT") && said.contains("missing.pem"),
        "{said}"
    );

    let toml = pki.path("hse.toml");
    let other_key = other.key.to_str().unwrap();
    std::fs::write(
        &toml,
        format!("tls_cert = {cert:?}\ntls_key = {other_key:?}\n"),
    )
    .unwrap();
    let said = refused(&[("HSE_CONFIG", toml.to_str().unwrap())]);
    assert!(
        said.contains("hse.toml: tls_key:") && said.contains("not the private key"),
        "{said}"
    );
}
