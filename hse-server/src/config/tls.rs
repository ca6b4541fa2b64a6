//! `HSE_TLS_CERT` and `HSE_TLS_KEY`: read and checked when the
//! configuration is, so a missing file or a key that is not the
//! certificate's stops start-up naming the variable (or the file key).

use std::path::PathBuf;

use super::{ConfigError, bad};
use crate::tls::{TlsError, TlsFiles, TlsSettings};

/// The TLS files, both or neither; `None`: every listener is plain text.
pub(super) fn tls(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<TlsSettings>, ConfigError> {
    let (cert, key) = match (get("HSE_TLS_CERT"), get("HSE_TLS_KEY")) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(bad("HSE_TLS_KEY", "is required with HSE_TLS_CERT".into())),
        (None, Some(_)) => return Err(bad("HSE_TLS_CERT", "is required with HSE_TLS_KEY".into())),
        (Some(cert), Some(key)) => (PathBuf::from(cert.trim()), PathBuf::from(key.trim())),
    };
    let files = TlsFiles { cert, key };
    TlsSettings::load(files.clone()).map(Some).map_err(|e| {
        let variable = match &e {
            TlsError::Read { path, .. } if *path != files.key => "HSE_TLS_CERT",
            TlsError::Certificate { .. } | TlsError::Setup(_) => "HSE_TLS_CERT",
            _ => "HSE_TLS_KEY",
        };
        bad(variable, e.to_string())
    })
}
