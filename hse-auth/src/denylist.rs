//! Access tokens revoked before they expire.
//!
//! An access token is a signed JWT that is checked without the store, so
//! signing out or a detected refresh-token reuse would leave it working
//! for up to its 15 minutes. [`Revocations`] closes that gap: it records,
//! for as long as a token could still be accepted (its lifetime plus the
//! clock leeway), the sessions (refresh families, the token's `sid`) that
//! ended and, per user, the time before which every token was revoked (a
//! password change or deactivation). [`crate::Authenticator::authenticate`]
//! consults it on every request, after the signature check or the
//! verified-token cache alike.
//!
//! Where the records live is the [`Denylist`] port: [`MemoryDenylist`] in
//! one process, `crate::redis::RedisDenylist` (feature `redis`) shared by
//! every node, so a sign-out on one node ends the token on all of them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hse_core::UserId;

use crate::error::Result;
use crate::model::FamilyId;
use crate::token::AccessClaims;

/// Short-lived records of revoked tokens: a key, a number, an end.
///
/// # Errors
/// Every method fails with [`crate::AuthError::Storage`] when the backend
/// does.
#[async_trait]
pub trait Denylist: Send + Sync + fmt::Debug {
    /// Records `value` under `key` from `now` until `until` (replacing an
    /// earlier one).
    async fn put(
        &self,
        key: &str,
        value: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<()>;
    /// The values still recorded at `now` under each of `keys`, in order.
    async fn get(&self, keys: &[String], now: DateTime<Utc>) -> Result<Vec<Option<i64>>>;
}

/// Records in process memory, each dropped once past its end.
#[derive(Debug, Default)]
pub struct MemoryDenylist {
    entries: Mutex<HashMap<String, (i64, DateTime<Utc>)>>,
}

impl MemoryDenylist {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Denylist for MemoryDenylist {
    async fn put(
        &self,
        key: &str,
        value: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (_, end)| *end > now);
        entries.insert(key.to_owned(), (value, until));
        Ok(())
    }

    async fn get(&self, keys: &[String], now: DateTime<Utc>) -> Result<Vec<Option<i64>>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .iter()
            .map(|k| {
                entries
                    .get(k)
                    .filter(|(_, end)| now < *end)
                    .map(|(v, _)| *v)
            })
            .collect())
    }
}

/// Revoked sessions and users, over a [`Denylist`].
#[derive(Clone, Debug)]
pub struct Revocations {
    list: Arc<dyn Denylist>,
}

impl Revocations {
    /// Revocations kept in `list`.
    #[must_use]
    pub fn new(list: Arc<dyn Denylist>) -> Self {
        Self { list }
    }

    /// From `now`, refuses every access token of `session` until `until`
    /// (the latest moment one of them could still be accepted).
    ///
    /// # Errors
    /// A storage error.
    pub async fn revoke_session(
        &self,
        session: FamilyId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<()> {
        self.list.put(&session_key(session), 0, now, until).await
    }

    /// From `now`, refuses every access token of `user` issued in an
    /// earlier second (`iat` has whole seconds), until `until`.
    ///
    /// # Errors
    /// A storage error.
    pub async fn revoke_user(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<()> {
        self.list
            .put(&user_key(user), now.timestamp(), now, until)
            .await
    }

    /// Whether the token with `claims` was revoked, as of `now`.
    ///
    /// # Errors
    /// A storage error (the caller refuses the token then: fail closed).
    pub async fn is_revoked(&self, claims: &AccessClaims, now: DateTime<Utc>) -> Result<bool> {
        let mut keys = vec![user_key(claims.sub)];
        if let Some(sid) = claims.sid {
            keys.push(session_key(sid));
        }
        let found = self.list.get(&keys, now).await?;
        let user_cut = found.first().copied().flatten();
        let session_ended = found.get(1).copied().flatten().is_some();
        Ok(session_ended || user_cut.is_some_and(|before| claims.iat < before))
    }
}

fn session_key(session: FamilyId) -> String {
    format!("sid:{session}")
}

fn user_key(user: UserId) -> String {
    format!("user:{user}")
}
