//! Opaque refresh tokens with rotation and reuse detection (RFC 9700 §4.14).
//!
//! A sign-in starts a *family*; its tokens are 256 random bits from the OS
//! RNG, kept only as SHA-256. Every refresh spends the presented token and
//! returns its successor. Presenting a spent token again means it was
//! copied: the whole family is revoked, so the thief's and the user's
//! newest tokens both stop working. The family has an absolute lifetime
//! (30 days by default) that rotation never extends.
//!
//! Two concurrent refreshes with one token: the store spends it atomically,
//! so exactly one gets a successor. By default the other is treated as
//! reuse and revokes the family (RFC 9700 cannot tell a racing client from
//! a thief). A deployment whose clients race themselves (several browser
//! tabs) can set a short reuse grace: a second use within it is refused
//! without revoking, and gets nothing either.
//!
//! Ending a session (sign-out, reuse) or all of a user's (password change,
//! deactivation) also ends the access tokens already issued in them,
//! through [`Revocations`], for as long as they could still be accepted.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hse_core::{Secret, UserId};

use crate::denylist::{MemoryDenylist, Revocations};
use crate::error::{AuthError, Result};
use crate::model::{FamilyId, RefreshFamily, RevokeReason, Rotation};
use crate::store::AuthStore;

/// How long a sign-in lasts at most by default.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::days(30);

/// A refresh token just issued.
#[derive(Clone, Debug)]
pub struct IssuedRefresh {
    /// The opaque token, to hand to the client once.
    pub token: Secret,
    /// Its family (the session).
    pub family_id: FamilyId,
    /// The session's absolute end.
    pub expires_at: DateTime<Utc>,
}

/// Issues, rotates and revokes refresh tokens.
#[derive(Clone, Debug)]
pub struct RefreshTokens {
    store: Arc<dyn AuthStore>,
    ttl: Duration,
    grace: Duration,
    revocations: Revocations,
    access_window: Duration,
}

impl RefreshTokens {
    /// Refresh tokens kept in `store`, sessions lasting `ttl`.
    #[must_use]
    pub fn new(store: Arc<dyn AuthStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            grace: Duration::zero(),
            revocations: Revocations::new(Arc::new(MemoryDenylist::new())),
            access_window: Duration::minutes(16),
        }
    }

    /// Ends the access tokens of ended sessions through `revocations`, for
    /// `access_window` (the access lifetime plus leeway) after the end.
    #[must_use]
    pub fn with_revocations(mut self, revocations: Revocations, access_window: Duration) -> Self {
        self.revocations = revocations;
        self.access_window = access_window;
        self
    }

    /// Where ended sessions are recorded.
    #[must_use]
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Treats a token presented again less than `grace` after it was spent
    /// as a client racing itself: refused, but the family is kept. The
    /// default, zero, revokes on any second use.
    #[must_use]
    pub fn with_reuse_grace(mut self, grace: Duration) -> Self {
        self.grace = grace.max(Duration::zero());
        self
    }

    /// Starts a family for `user` and returns its first token.
    ///
    /// # Errors
    /// [`AuthError::Internal`] if the RNG fails, or a storage error.
    pub async fn start(&self, user: UserId, now: DateTime<Utc>) -> Result<IssuedRefresh> {
        let token = new_token()?;
        let family = RefreshFamily {
            id: FamilyId::new(),
            user_id: user,
            created_at: now,
            expires_at: now + self.ttl,
        };
        self.store.create_family(&family, token.hash()).await?;
        Ok(IssuedRefresh {
            token,
            family_id: family.id,
            expires_at: family.expires_at,
        })
    }

    /// Spends `presented` and returns its successor and the user.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for an unknown, expired or revoked token;
    /// [`AuthError::RefreshReuse`] for a spent one (its family is revoked).
    pub async fn rotate(
        &self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<(UserId, IssuedRefresh)> {
        let next = new_token()?;
        let presented = Secret::from_presented(presented).hash();
        match self
            .store
            .rotate_refresh(presented, next.hash(), now, self.grace)
            .await?
        {
            Rotation::Rotated {
                family_id,
                user_id,
                expires_at,
            } => Ok((
                user_id,
                IssuedRefresh {
                    token: next,
                    family_id,
                    expires_at,
                },
            )),
            Rotation::Reused { family_id, user_id } => {
                metrics::counter!("hse_auth_refresh_reuse_total").increment(1);
                self.revocations
                    .revoke_session(family_id, now, now + self.access_window)
                    .await?;
                tracing::warn!(family.id = %family_id, user.id = %user_id,
                    "refresh token reuse: family revoked");
                Err(AuthError::RefreshReuse)
            }
            Rotation::Raced { family_id } => {
                tracing::info!(family.id = %family_id, "refresh raced within the grace window");
                Err(AuthError::InvalidToken)
            }
            Rotation::Invalid => Err(AuthError::InvalidToken),
        }
    }

    /// Revokes the family of `presented` (sign-out) and its access tokens.
    /// Unknown tokens are ignored, so sign-out always succeeds.
    ///
    /// # Errors
    /// A storage error.
    pub async fn revoke(&self, presented: &str, now: DateTime<Utc>) -> Result<Option<FamilyId>> {
        let hash = Secret::from_presented(presented).hash();
        let family = self
            .store
            .revoke_family_of(hash, RevokeReason::Logout, now)
            .await?;
        if let Some(family) = family {
            self.revocations
                .revoke_session(family, now, now + self.access_window)
                .await?;
        }
        Ok(family)
    }

    /// Revokes every session of `user`, and every access token issued to
    /// it before this second.
    ///
    /// # Errors
    /// A storage error.
    pub async fn revoke_user(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let ended = self.store.revoke_user_families(user, reason, now).await?;
        self.revocations
            .revoke_user(user, now, now + self.access_window)
            .await?;
        Ok(ended)
    }
}

fn new_token() -> Result<Secret> {
    Secret::generate().map_err(|e| AuthError::Internal(e.to_string()))
}
