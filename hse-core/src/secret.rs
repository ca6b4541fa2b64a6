//! High-entropy secrets handed out once and stored only as a hash.
//!
//! Invitation tokens and device secrets are 256 random bits from the OS
//! RNG, shown to their holder once, and kept only as SHA-256: with that much
//! entropy a slow hash adds nothing, and a fast one lets the stored hash be
//! the lookup key.

use std::fmt;

use rand::TryRng;
use rand::rngs::SysRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CoreError;

/// A secret in clear text. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// 32 bytes from the OS RNG, hex-encoded (64 characters).
    ///
    /// # Errors
    /// [`CoreError::Storage`] if the OS RNG fails (it practically never does).
    pub fn generate() -> Result<Self, CoreError> {
        let mut bytes = [0u8; 32];
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| CoreError::Storage(format!("OS random generator: {e}")))?;
        Ok(Self(hex::encode(bytes)))
    }

    /// Wraps a secret presented by a client (not validated: a wrong secret
    /// simply matches no hash).
    #[must_use]
    pub fn from_presented(text: &str) -> Self {
        Self(text.to_owned())
    }

    /// The clear text, to show once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256, the only form ever stored.
    #[must_use]
    pub fn hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The SHA-256 of a [`Secret`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Builds from stored bytes.
    ///
    /// # Errors
    /// [`CoreError::Storage`] when the stored value is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CoreError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| CoreError::Storage("stored secret hash is not 32 bytes".into()))
    }

    /// Whether `presented` hashes to this value (constant time in the
    /// hash comparison).
    #[must_use]
    pub fn matches(&self, presented: &Secret) -> bool {
        let other = presented.hash();
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}..)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_unique_and_redacted() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn a_hash_matches_only_its_secret() {
        let a = Secret::generate().unwrap();
        let h = a.hash();
        assert!(h.matches(&Secret::from_presented(a.expose())));
        assert!(!h.matches(&Secret::from_presented("guess")));
    }
}
