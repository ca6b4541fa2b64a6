//! Plain data of hse-auth: ids and the records the stores keep.
//!
//! No record holds a secret in clear: refresh tokens and API keys are kept
//! as SHA-256 (or HMAC) digests, TOTP secrets encrypted, recovery codes
//! hashed.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use hse_core::{ActionName, Scope, SecretHash, UserId};
use serde::{Deserialize, Serialize};

hse_core::define_id!(
    /// Identifies a refresh-token family: one sign-in and all the tokens
    /// rotated from it.
    FamilyId
);
hse_core::define_id!(
    /// Identifies an API key (the public part of `hse_<id>_<secret>`).
    ApiKeyId
);

/// A string secret (token, key, code) that `Debug` never prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The clear text, to hand to its holder.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// One family of refresh tokens, created at sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    /// Its id.
    pub id: FamilyId,
    /// Whose session it is.
    pub user_id: UserId,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
    /// Absolute end of the session: no token of the family works after it.
    pub expires_at: DateTime<Utc>,
}

/// What happened when a refresh token was presented for rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now spent and its successor stored.
    Rotated {
        /// The family (session).
        family_id: FamilyId,
        /// Whose session.
        user_id: UserId,
        /// The session's absolute end.
        expires_at: DateTime<Utc>,
    },
    /// The token was already spent: the family is now revoked.
    Reused {
        /// The revoked family.
        family_id: FamilyId,
        /// Whose session.
        user_id: UserId,
    },
    /// The token was spent less than the grace window ago: most likely a
    /// client racing itself. Nothing is issued and the family is kept.
    Raced {
        /// The family.
        family_id: FamilyId,
    },
    /// No such token, or its family is revoked or expired.
    Invalid,
}

/// What a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired refresh-token families (with their tokens).
    pub families: u64,
    /// Old usage-audit records.
    pub usage: u64,
}

/// Why a family was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user signed out.
    Logout,
    /// A spent token was presented again.
    Reuse,
    /// The password changed.
    PasswordChange,
    /// The account was deactivated or an operator ended its sessions.
    Deactivated,
}

impl RevokeReason {
    /// The reason as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Reuse => "reuse",
            Self::PasswordChange => "password_change",
            Self::Deactivated => "deactivated",
        }
    }
}

/// A stored API key (never its secret: only the digest and last four).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Its id, the public part of the key.
    pub id: ApiKeyId,
    /// A label chosen by its creator.
    pub name: String,
    /// Who created it; the key acts as this user, narrowed.
    pub created_by: UserId,
    /// The tenant scope it belongs to (its creator's scope at creation).
    pub scope: Scope,
    /// What it may do: a subset of its creator's permissions.
    pub permissions: BTreeSet<ActionName>,
    /// The last four characters of the secret, to recognise it in lists.
    pub last_four: String,
    /// SHA-256 or HMAC-SHA-256 of the secret.
    #[serde(skip)]
    pub secret_hash: Option<SecretHash>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working by itself, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key that minted it, if a key did (`None`: its creator did,
    /// signed in). Revoking a key revokes every key minted from it.
    #[serde(default)]
    pub parent_id: Option<ApiKeyId>,
}

impl ApiKey {
    /// Whether the key works at `now`.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| now < end)
    }
}

/// One use of an API key, for the usage audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// The key used.
    pub key_id: ApiKeyId,
    /// The route, e.g. `GET /api/v1/devices` (never a query string).
    pub route: String,
    /// The HTTP status answered.
    pub status: u16,
    /// When.
    pub at: DateTime<Utc>,
}

/// A user's TOTP enrollment, with its secret encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrollment {
    /// Whose.
    pub user_id: UserId,
    /// Nonce and ciphertext of the shared secret (ChaCha20-Poly1305).
    pub sealed_secret: Vec<u8>,
    /// When the user proved possession with a first code; until then the
    /// enrollment does not guard sign-in.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The last time step accepted, so a code cannot be replayed.
    pub last_step: Option<i64>,
    /// When enrollment started.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrollment")
            .field("user_id", &self.user_id)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_strings_and_enrollments_never_print_their_secret() {
        let s = SecretString::new("hunter2-token".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let e = TotpEnrollment {
            user_id: UserId::new(),
            sealed_secret: b"sealed-bytes".to_vec(),
            confirmed_at: None,
            last_step: None,
            created_at: Utc::now(),
        };
        assert!(!format!("{e:?}").contains("115"));
    }
}
