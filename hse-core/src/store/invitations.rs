//! The port of invitations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::invitation::Invitation;
use crate::model::User;
use crate::principal::Scope;
use crate::secret::SecretHash;

/// Invitations and their acceptance. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores an invitation; its target must exist and be in scope, and its
    /// role must be a system role or a custom role of the target
    /// organization ([`CoreError::NotFound`](crate::CoreError::NotFound) on `role` otherwise: a partner
    /// company cannot be offered a custom role). [`CoreError::AlreadyExists`](crate::CoreError::AlreadyExists)
    /// for a taken id or token.
    async fn insert_invitation(&self, scope: &Scope, invitation: &Invitation) -> Result<()>;
    /// An invitation by the hash of its token. *System path*.
    async fn invitation_by_token(&self, token: SecretHash) -> Result<Option<Invitation>>;
    /// Atomically: checks the invitation is open at `now`, stores `user`
    /// with `password_hash`, and marks the invitation accepted. Two
    /// concurrent acceptances: exactly one succeeds. A `user` without the
    /// invitation's email, role and placement (its organization, or its
    /// partner company and no organization) is [`CoreError::Invalid`](crate::CoreError::Invalid)
    /// naming `user`, and the invitation stays open. *System path*.
    async fn accept_invitation(
        &self,
        token: SecretHash,
        user: &User,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User>;
    /// Atomically marks an open invitation declined. *System path*.
    async fn decline_invitation(&self, token: SecretHash, now: DateTime<Utc>)
    -> Result<Invitation>;
}
