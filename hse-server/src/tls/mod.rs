//! TLS on the server's three listeners: the HTTP API, gRPC and the device
//! TCP protocol, with rustls (the `ring` provider, TLS 1.2 and 1.3).
//!
//! One certificate chain and key (`HSE_TLS_CERT`, `HSE_TLS_KEY`, PEM)
//! serve all three; with neither set, every listener speaks plain text.
//! Each listener has its own rustls configuration, for its ALPN:
//! `http/1.1` on HTTP, `h2` on gRPC (gRPC clients require it), none on the
//! device port. The three share one [`Certificates`], which picks the
//! current certificate for each handshake, so [`reload`] swaps it for new
//! connections while the open ones keep the one they began with.
//!
//! The handshake runs after a connection is admitted by the listener's
//! caps and within a deadline (the HTTP header timeout, the device hello
//! timeout), so a client that never completes it, or speaks plain text to
//! a TLS port, is closed and frees its place.
//!
//! # Layout
//! - [`Certificates`]: the current certificate, read from the files.
//! - [`reload`]: reads the files again on SIGHUP and when they change.
//! - [`stream`]: a connection that is TLS or plain, for the listeners.

pub mod reload;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, crypto::ring};
use tokio_rustls::TlsAcceptor;

pub use stream::MaybeTls;

/// Why the certificate or key could not be used. Each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM `CERTIFICATE`, or a bad one.
    #[error("{path}: no PEM certificate in it ({reason})")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("{path}: no PEM private key in it ({reason})")]
    Key {
        /// The file.
        path: PathBuf,
        /// What the PEM reader or rustls said.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{key} is not the private key of the certificate in {cert} ({reason})")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// rustls refused the server configuration (the `ring` provider
    /// supports the default protocol versions, so this is not expected).
    #[error("TLS set-up failed: {0}")]
    Setup(rustls::Error),
}

/// Where the certificate chain and its private key are (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The chain, leaf first (`HSE_TLS_CERT`).
    pub cert: PathBuf,
    /// The leaf's private key: PKCS#8, PKCS#1 or SEC1 (`HSE_TLS_KEY`).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files and checks that the key is the certificate's.
    ///
    /// # Errors
    /// [`TlsError`] naming the file at fault.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let chain = read(&self.cert)?;
        let chain = CertificateDer::pem_slice_iter(&chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.bad_cert(e.to_string()))?;
        if chain.is_empty() {
            return Err(self.bad_cert("the file is empty or holds other PEM sections".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&read(&self.key)?).map_err(|e| TlsError::Key {
            path: self.key.clone(),
            reason: e.to_string(),
        })?;
        let provider = provider();
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Key {
                path: self.key.clone(),
                reason: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(Arc::new(certified))
            }
            Err(e) => Err(TlsError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn bad_cert(&self, reason: String) -> TlsError {
        TlsError::Certificate {
            path: self.cert.clone(),
            reason,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn provider() -> CryptoProvider {
    ring::default_provider()
}

/// The TLS settings of a started server: the files and the certificate
/// read from them at start-up. `Debug` shows the paths only.
#[derive(Clone)]
pub struct TlsSettings {
    /// The files, read again on reload.
    pub files: TlsFiles,
    /// What they held when the configuration was read.
    pub loaded: Arc<CertifiedKey>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads `files` once.
    ///
    /// # Errors
    /// [`TlsError`] naming the file at fault.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let loaded = files.load()?;
        Ok(Self { files, loaded })
    }
}

/// The certificate every handshake is answered with, replaced by
/// [`Certificates::reload`].
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Starts with the certificate of `settings`.
    #[must_use]
    pub fn new(settings: &TlsSettings) -> Arc<Self> {
        Arc::new(Self {
            files: settings.files.clone(),
            current: RwLock::new(Arc::clone(&settings.loaded)),
        })
    }

    /// The files it reads.
    #[must_use]
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate handshakes get now.
    #[must_use]
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the files again; on success new handshakes get the new
    /// certificate, on failure the current one stays.
    ///
    /// # Errors
    /// [`TlsError`] naming the file at fault; nothing changed.
    pub fn reload(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let loaded = self.files.load()?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&loaded);
        Ok(loaded)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS acceptors of the three listeners, over one [`Certificates`].
#[derive(Clone)]
pub struct Tls {
    certificates: Arc<Certificates>,
    http: TlsAcceptor,
    grpc: TlsAcceptor,
    device: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", self.certificates.files())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The acceptors, answering with the certificate of `settings` until
    /// a reload.
    ///
    /// # Errors
    /// [`TlsError::Setup`] if rustls refuses its own defaults.
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsError> {
        let certificates = Certificates::new(settings);
        let acceptor = |alpn: &[&[u8]]| {
            let mut config = server_config(&certificates)?;
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok::<_, TlsError>(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(Self {
            http: acceptor(&[b"http/1.1"])?,
            grpc: acceptor(&[b"h2"])?,
            device: acceptor(&[])?,
            certificates,
        })
    }

    /// The certificates, to reload.
    #[must_use]
    pub fn certificates(&self) -> &Arc<Certificates> {
        &self.certificates
    }

    /// The HTTP listener's acceptor (ALPN `http/1.1`).
    #[must_use]
    pub fn http(&self) -> TlsAcceptor {
        self.http.clone()
    }

    /// The gRPC listener's acceptor (ALPN `h2`).
    #[must_use]
    pub fn grpc(&self) -> TlsAcceptor {
        self.grpc.clone()
    }

    /// The device TCP listener's acceptor (no ALPN).
    #[must_use]
    pub fn device(&self) -> TlsAcceptor {
        self.device.clone()
    }
}

fn server_config(certificates: &Arc<Certificates>) -> Result<ServerConfig, TlsError> {
    let resolver: Arc<dyn ResolvesServerCert> = certificates.clone();
    Ok(ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(resolver))
}

/// The SHA-256 fingerprint of `key`'s leaf certificate, as
/// `openssl x509 -fingerprint -sha256` prints it (upper-case hex, colons).
#[must_use]
pub fn fingerprint(key: &CertifiedKey) -> String {
    use sha2::Digest;
    let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    sha2::Sha256::digest(leaf)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests;
