//! The crate's error type.
//!
//! Variants are things a caller can act on: a missing entity (answer 404),
//! invalid input naming the field (400), a conflict (409), a denied action
//! (403, or 404 when the target is outside the caller's scope), a closed
//! invitation (422). Infrastructure failures are kept opaque.

use crate::rules::Denied;

/// Everything that can go wrong in hse-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The entity does not exist, or it is outside the caller's scope
    /// (the two are deliberately indistinguishable).
    #[error("{entity} not found")]
    NotFound {
        /// Which kind of entity was looked for, e.g. `"organization"`.
        entity: &'static str,
    },
    /// Input failed validation.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A uniqueness rule was violated (e.g. an email already in use).
    #[error("{entity} already exists: {detail}")]
    AlreadyExists {
        /// Which kind of entity collided.
        entity: &'static str,
        /// What collided, safe to show to the caller.
        detail: String,
    },
    /// The entity still has dependants (e.g. deleting an organization with
    /// establishments).
    #[error("{entity} is still referenced: {detail}")]
    InUse {
        /// The entity that could not be removed.
        entity: &'static str,
        /// What still refers to it.
        detail: String,
    },
    /// An authorization rule refused the action.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The invitation was already accepted or declined, or has expired.
    #[error("invitation is {state}")]
    InvitationClosed {
        /// `accepted`, `declined` or `expired`.
        state: &'static str,
    },
    /// The password hasher port failed or refused the password.
    #[error("password: {0}")]
    Password(String),
    /// The storage backend failed; the text is for logs, never for clients.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl CoreError {
    /// Shorthand for [`CoreError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`CoreError::NotFound`].
    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for CoreError {
    /// A value PostgreSQL refused (SQLSTATE class `22`, e.g. a NUL
    /// character) is invalid input; anything else is a storage failure.
    fn from(e: sqlx::Error) -> Self {
        match crate::postgres::refused_value(&e) {
            Some(reason) => Self::invalid("value", reason),
            None => Self::Storage(e.to_string()),
        }
    }
}

/// Result alias for hse-core.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
