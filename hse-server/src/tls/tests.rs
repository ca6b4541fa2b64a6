//! Loading, checking and reloading certificates made by the `openssl`
//! command, and the configuration errors that name the variable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::Config;

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hse-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for `localhost` and its key, as
/// `<stem>.crt` and `<stem>.key` in `dir`.
fn self_signed(dir: &Path, stem: &str) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    };
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    files
}

#[test]
fn a_certificate_and_its_key_load_and_a_reload_swaps_them() {
    let dir = scratch("swap");
    let first = self_signed(&dir, "first");
    let certificates = Certificates::new(&TlsSettings::load(first.clone()).unwrap());
    let before = fingerprint(&certificates.current());
    assert_eq!(before.len(), 32 * 3 - 1, "{before}");

    let second = self_signed(&dir, "second");
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    let reloaded = certificates.reload().unwrap();
    assert_ne!(fingerprint(&reloaded), before);
    assert_eq!(fingerprint(&certificates.current()), fingerprint(&reloaded));
}

#[test]
fn a_bad_new_file_keeps_the_current_certificate() {
    let dir = scratch("keep");
    let files = self_signed(&dir, "server");
    let certificates = Certificates::new(&TlsSettings::load(files.clone()).unwrap());
    let before = fingerprint(&certificates.current());

    std::fs::write(&files.cert, "not a certificate\n").unwrap();
    assert!(matches!(
        certificates.reload(),
        Err(TlsError::Certificate { .. })
    ));
    let other = self_signed(&dir, "other");
    std::fs::copy(&other.cert, &files.cert).unwrap();
    let refused = certificates.reload().unwrap_err();
    assert!(matches!(refused, TlsError::Mismatch { .. }), "{refused}");
    assert_eq!(fingerprint(&certificates.current()), before);
}

#[test]
fn chain_and_key_may_share_one_file() {
    let dir = scratch("combined");
    let files = self_signed(&dir, "server");
    let combined = dir.join("combined.pem");
    let mut pem = std::fs::read(&files.cert).unwrap();
    pem.extend(std::fs::read(&files.key).unwrap());
    std::fs::write(&combined, pem).unwrap();
    let shared = TlsFiles {
        cert: combined.clone(),
        key: combined,
    };
    assert!(shared.load().is_ok());
}

/// A variable and its value.
type Pair<'a> = (&'a str, &'a str);

fn config(pairs: &[Pair<'_>]) -> Result<Config, crate::config::ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn bad_tls_settings_stop_start_up_naming_the_variable() {
    let dir = scratch("config");
    let files = self_signed(&dir, "server");
    let other = self_signed(&dir, "other");
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let other_key = other.key.to_str().unwrap();

    let cases: [(&[Pair<'_>], &str, &str); 5] = [
        (&[("HSE_TLS_CERT", cert)], "HSE_TLS_KEY", "required"),
        (&[("HSE_TLS_KEY", key)], "HSE_TLS_CERT", "required"),
        (
            &[("HSE_TLS_CERT", missing), ("HSE_TLS_KEY", key)],
            "HSE_TLS_CERT",
            "cannot read",
        ),
        (
            &[("HSE_TLS_CERT", cert), ("HSE_TLS_KEY", missing)],
            "HSE_TLS_KEY",
            "cannot read",
        ),
        (
            &[("HSE_TLS_CERT", cert), ("HSE_TLS_KEY", other_key)],
            "HSE_TLS_KEY",
            "not the private key",
        ),
    ];
    for (pairs, variable, reason) in cases {
        let error = config(pairs).unwrap_err();
        assert_eq!(error.variable, variable, "{error}");
        assert!(error.to_string().contains(reason), "{error}");
    }
    let good = config(&[("HSE_TLS_CERT", cert), ("HSE_TLS_KEY", key)]).unwrap();
    assert_eq!(good.tls.map(|t| t.files), Some(files));
    assert!(config(&[]).unwrap().tls.is_none());
}
