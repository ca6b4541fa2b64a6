//! The device side of TLS: a door lock that trusts one CA and checks the
//! server certificate's name, then speaks the line protocol over the
//! encrypted stream (shared by `device_simulator --tls-ca` and the
//! real-binary TLS suite, so the simulator's client is the one tested).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::line_device::LineDevice;

/// The TLS client side: the trusted CA and the name to check.
pub(crate) struct DeviceTls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl DeviceTls {
    /// Trusts the PEM certificates in `ca` for `name`.
    pub(crate) fn new(ca: &Path, name: &str) -> anyhow::Result<Self> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("--tls-ca {}", ca.display()))?
        {
            roots.add(cert.with_context(|| format!("--tls-ca {}", ca.display()))?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name: rustls::pki_types::ServerName::try_from(name.to_owned())
                .with_context(|| format!("--tls-name {name}"))?,
        })
    }

    /// Connects over TLS and says hello.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        id: &str,
        secret: &str,
    ) -> anyhow::Result<LineDevice> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("device TCP {addr}"))?;
        stream.set_nodelay(true)?;
        let stream = self
            .connector
            .connect(self.name.clone(), stream)
            .await
            .with_context(|| format!("TLS handshake with {addr}"))?;
        LineDevice::hello(stream, id, secret).await
    }
}
