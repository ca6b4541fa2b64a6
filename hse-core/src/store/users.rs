//! The ports of users and of their establishment assignments.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Credentials, Listing, Page};
use crate::error::Result;
use crate::id::UserId;
use crate::model::{User, UserEstablishment, UserPatch};
use crate::principal::{Principal, Scope};
use crate::value::Email;

/// Users, their sign-in records and their principals. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user; [`CoreError::AlreadyExists`](crate::CoreError::AlreadyExists) if the id or email
    /// is taken. A user of an organization takes its organization's partner:
    /// a different `partner_company_id` is [`CoreError::Invalid`](crate::CoreError::Invalid) naming
    /// `partner_company_id`, none is filled in.
    async fn insert_user(
        &self,
        scope: &Scope,
        user: &User,
        password_hash: Option<&str>,
    ) -> Result<()>;
    /// One user in scope.
    async fn user(&self, scope: &Scope, id: UserId) -> Result<User>;
    /// Users in scope.
    async fn list_users(&self, scope: &Scope, page: Page) -> Result<Listing<User>>;
    /// Applies `patch` atomically.
    async fn update_user(
        &self,
        scope: &Scope,
        id: UserId,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User>;
    /// A user and its password hash by email. *System path* (sign-in).
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>>;
    /// Replaces a user's password hash. *System path* (password change,
    /// rehash on login).
    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Builds the principal of an active user from its role and
    /// assignments; [`CoreError::NotFound`](crate::CoreError::NotFound) if it is absent or inactive,
    /// or if its organization or partner company (its own, or its
    /// organization's) is suspended: a suspended tenant's users, and the
    /// API keys they created, have no principal.
    /// *System path* (every authenticated request).
    async fn principal(&self, id: UserId) -> Result<Principal>;
}

/// Users' assignments to establishments. Part of [`TenancyStore`](super::TenancyStore).
#[async_trait]
pub trait AssignmentStore: Send + Sync {
    /// Assigns a user to an establishment of its own organization
    /// (replacing an earlier assignment's role).
    async fn assign_establishment(
        &self,
        scope: &Scope,
        assignment: &UserEstablishment,
    ) -> Result<()>;
    /// A user's (in scope) assignments to the establishments in scope.
    async fn assignments(&self, scope: &Scope, user: UserId) -> Result<Vec<UserEstablishment>>;
}
