//! The crate's error type.
//!
//! Variants are things a caller can act on: a conflicting booking (409,
//! naming it), a refused state change (409/422, naming the current state),
//! a missing entity (404; also what out-of-scope targets look like), invalid
//! input naming the field (400), a denied action (403). Infrastructure
//! failures are kept opaque.

use hse_core::{CoreError, DeviceId, rules::Denied};

use crate::model::BookingId;
use crate::status::IllegalTransition;

/// Everything that can go wrong in hse-booking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BookingError {
    /// The booking would overlap an active booking of the same area (after
    /// the turnover gap).
    #[error("overlaps booking {with}")]
    Overlap {
        /// The conflicting booking.
        with: BookingId,
    },
    /// The booking's state does not allow the operation.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The entity does not exist, or it is outside the caller's scope.
    #[error("{entity} not found")]
    NotFound {
        /// Which kind of entity, e.g. `"booking"`.
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
    /// A uniqueness rule was violated (a companion link, a confirmation
    /// code, a door code on the same lock and window).
    #[error("{entity} already exists")]
    AlreadyExists {
        /// What collided.
        entity: &'static str,
    },
    /// The lock already holds its maximum of concurrently valid codes.
    #[error("lock {device} already has {max} active codes")]
    CodeCapReached {
        /// The lock.
        device: DeviceId,
        /// Its cap.
        max: u32,
    },
    /// An authorization rule refused the action.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The operating system's random generator failed; the text is for logs.
    #[error("random generator failure: {0}")]
    Random(String),
    /// The storage backend failed; the text is for logs, never for clients.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl BookingError {
    /// Shorthand for [`BookingError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`BookingError::NotFound`].
    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }
}

impl From<CoreError> for BookingError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { entity } => Self::NotFound { entity },
            CoreError::Invalid { field, reason } => Self::Invalid { field, reason },
            CoreError::AlreadyExists { entity, .. } => Self::AlreadyExists { entity },
            CoreError::Denied(d) => Self::Denied(d),
            other => Self::Storage(other.to_string()),
        }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for BookingError {
    /// A value PostgreSQL refused (SQLSTATE class `22`, e.g. a NUL
    /// character) is invalid input; anything else is a storage failure.
    fn from(e: sqlx::Error) -> Self {
        match hse_core::postgres::refused_value(&e) {
            Some(reason) => Self::invalid("value", reason),
            None => Self::Storage(e.to_string()),
        }
    }
}

/// Result alias for hse-booking.
pub type Result<T, E = BookingError> = std::result::Result<T, E>;
