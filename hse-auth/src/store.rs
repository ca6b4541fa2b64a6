//! The ports hse-auth needs: [`UserDirectory`] (users and their
//! principals, served by hse-core's `TenancyStore`) and [`AuthStore`]
//! (refresh-token families, API keys, their usage, TOTP).
//!
//! Adapters: [`crate::memory::MemoryAuthStore`] and, with the `postgres`
//! feature, `crate::postgres::PgAuthStore`. Both pass the behavioural suite
//! in `tests/auth.rs`, so they cannot drift. Every method that guards a
//! secret is atomic: two concurrent rotations of one refresh token, or two
//! uses of one recovery code, have exactly one winner.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::store::Credentials;
use hse_core::value::Email;
use hse_core::{CoreError, Principal, Scope, SecretHash, TenancyStore, UserId};

use crate::error::Result;
use crate::model::{
    ApiKey, ApiKeyId, FamilyId, KeyUsage, Purged, RefreshFamily, RevokeReason, Rotation,
    TotpEnrollment,
};

/// What sign-in needs to know about users.
///
/// Any hse-core [`TenancyStore`] provides it through [`TenancyDirectory`].
///
/// # Errors
/// Every method fails with [`crate::AuthError::Storage`] when the backend
/// does; an unknown email or user is `None`, not an error.
#[async_trait]
pub trait UserDirectory: Send + Sync + fmt::Debug {
    /// A user and its password hash by email.
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>>;
    /// A user and its password hash by id.
    async fn credentials_of(&self, id: UserId) -> Result<Option<Credentials>>;
    /// Replaces a user's password hash.
    async fn set_password_hash(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> Result<()>;
    /// The principal of an active user; `None` when the user is absent or
    /// inactive.
    async fn principal(&self, id: UserId) -> Result<Option<Principal>>;
}

/// The [`UserDirectory`] of an hse-core [`TenancyStore`].
#[derive(Clone, Debug)]
pub struct TenancyDirectory(Arc<dyn TenancyStore>);

impl TenancyDirectory {
    /// Wraps a tenancy store.
    #[must_use]
    pub fn new(store: Arc<dyn TenancyStore>) -> Self {
        Self(store)
    }
}

#[async_trait]
impl UserDirectory for TenancyDirectory {
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>> {
        Ok(self.0.credentials(email).await?)
    }

    async fn credentials_of(&self, id: UserId) -> Result<Option<Credentials>> {
        match self.0.user(&Scope::Platform, id).await {
            Ok(user) => self.credentials(&user.email).await,
            Err(CoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_password_hash(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> Result<()> {
        Ok(self.0.set_password_hash(id, hash, now).await?)
    }

    async fn principal(&self, id: UserId) -> Result<Option<Principal>> {
        match self.0.principal(id).await {
            Ok(p) => Ok(Some(p)),
            Err(CoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Storage of refresh-token families, API keys, key usage and TOTP.
///
/// # Errors
/// Every method fails with [`crate::AuthError::Storage`] when the backend
/// does; answers such as "already spent" or "unknown" are values, not
/// errors.
#[async_trait]
pub trait AuthStore: Send + Sync + fmt::Debug {
    /// Stores a new family with its first token.
    async fn create_family(&self, family: &RefreshFamily, first: SecretHash) -> Result<()>;
    /// Atomically: if `presented` is live (unspent, family not revoked nor
    /// expired at `now`), spends it and stores `next` in its family; if it
    /// was spent less than `grace` ago, answers [`Rotation::Raced`]; if it
    /// was spent earlier, revokes the family ([`Rotation::Reused`]).
    async fn rotate_refresh(
        &self,
        presented: SecretHash,
        next: SecretHash,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Rotation>;
    /// Revokes the family `token` belongs to; its id, if the token exists.
    async fn revoke_family_of(
        &self,
        token: SecretHash,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<Option<FamilyId>>;
    /// Revokes every live family of `user`; how many.
    async fn revoke_user_families(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Whether a family is revoked (or unknown).
    async fn family_revoked(&self, id: FamilyId) -> Result<bool>;
    /// Deletes families that expired before `now` (with their tokens) and
    /// usage records older than `usage_before`.
    async fn purge(&self, now: DateTime<Utc>, usage_before: DateTime<Utc>) -> Result<Purged>;

    /// Stores a new API key (with its `secret_hash`). A key with a
    /// `parent_id` is stored only if, atomically with a concurrent
    /// [`AuthStore::revoke_api_key`] of the parent or any of its ancestors,
    /// the parent exists and is live at the key's `created_at`; otherwise
    /// [`crate::AuthError::InvalidApiKey`] (the minting key stopped working).
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    /// A key by id, with its `secret_hash`.
    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>>;
    /// The keys a user created, oldest first.
    async fn api_keys_created_by(&self, user: UserId) -> Result<Vec<ApiKey>>;
    /// The keys minted from `id`, transitively (its children, theirs…),
    /// oldest first; not `id` itself.
    async fn api_key_descendants(&self, id: ApiKeyId) -> Result<Vec<ApiKey>>;
    /// Marks a key and every key minted from it, transitively, revoked
    /// (those already revoked keep their time); `false` if the key itself
    /// was unknown or already revoked. No key can be minted from one of
    /// them once this returns.
    async fn revoke_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> Result<bool>;
    /// Appends a batch of key uses.
    async fn insert_usage(&self, batch: &[KeyUsage]) -> Result<()>;
    /// The latest uses of a key, newest first.
    async fn key_usage(&self, id: ApiKeyId, limit: u32) -> Result<Vec<KeyUsage>>;

    /// Stores an enrollment, replacing an unconfirmed one; does nothing
    /// and answers `false` if a confirmed one exists.
    async fn put_totp(&self, enrollment: &TotpEnrollment) -> Result<bool>;
    /// A user's enrollment.
    async fn totp(&self, user: UserId) -> Result<Option<TotpEnrollment>>;
    /// Atomically records `step` as used if it is later than the last one
    /// (and confirms the enrollment); `false` if it was not later.
    async fn use_totp_step(&self, user: UserId, step: i64, now: DateTime<Utc>) -> Result<bool>;
    /// Removes the enrollment and its recovery codes.
    async fn delete_totp(&self, user: UserId) -> Result<()>;
    /// Replaces a user's recovery codes (hashed).
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[SecretHash],
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Atomically spends an unused recovery code; `false` if there was none.
    async fn use_recovery_code(
        &self,
        user: UserId,
        code: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// How many unused recovery codes a user has.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u32>;
}
