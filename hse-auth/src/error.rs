//! The crate's error type.
//!
//! Every variant maps to one HTTP answer (see [`AuthError::http_status`],
//! [`AuthError::code`], [`AuthError::retry_after_secs`]): bad credentials
//! or tokens 401, a refused action 403, a limit 429 (with the time to
//! wait), an overloaded hasher or a storage backend down 503. Authentication failures are
//! deliberately vague: an unknown email and a wrong password, an unknown
//! key id and a wrong secret, give the same variant.

use std::time::Duration;

use hse_core::CoreError;

/// Everything that can go wrong in hse-auth.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong email or password, or an inactive account (401).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// An access or refresh token that is malformed, forged, expired,
    /// revoked, of the wrong kind, or names a user that no longer exists (401).
    #[error("invalid or expired token")]
    InvalidToken,
    /// A spent refresh token was presented again; its whole family is now
    /// revoked and the user must sign in again (401).
    #[error("refresh token reuse detected; the session was revoked")]
    RefreshReuse,
    /// An API key that is malformed, unknown, wrong, expired or revoked (401).
    #[error("invalid API key")]
    InvalidApiKey,
    /// The account has a second factor: finish with a TOTP or recovery
    /// code (401 with a challenge).
    #[error("second factor required")]
    SecondFactorRequired,
    /// The TOTP or recovery code is wrong or was already used (401).
    #[error("invalid second-factor code")]
    InvalidSecondFactor,
    /// The password is refused by the policy; the reason is safe to show (422).
    #[error("password refused: {reason}")]
    WeakPassword {
        /// Why, for the user.
        reason: String,
    },
    /// The caller may not do this, e.g. give an API key a permission it
    /// does not hold itself (403).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why, safe to show.
        reason: String,
    },
    /// Input failed validation (400).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The entity does not exist or is outside the caller's reach (404).
    #[error("{entity} not found")]
    NotFound {
        /// Which kind of entity.
        entity: &'static str,
    },
    /// A rate limit or the login throttle refused the request (429).
    #[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long to wait before the next attempt can succeed.
        retry_after: Duration,
    },
    /// Too many password hashes are running; try again shortly (503).
    #[error("authentication is busy; retry shortly")]
    Busy,
    /// The component was configured wrongly (start-up error).
    #[error("configuration: {0}")]
    Config(String),
    /// A storage backend failed; the text is for logs, never for clients (503).
    #[error("storage failure: {0}")]
    Storage(String),
    /// An internal failure (RNG, crypto library); for logs only (500).
    #[error("internal failure: {0}")]
    Internal(String),
}

impl AuthError {
    /// The HTTP status a server should answer with.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidCredentials
            | Self::InvalidToken
            | Self::RefreshReuse
            | Self::InvalidApiKey
            | Self::SecondFactorRequired
            | Self::InvalidSecondFactor => 401,
            Self::Forbidden { .. } => 403,
            Self::Invalid { .. } => 400,
            Self::NotFound { .. } => 404,
            Self::WeakPassword { .. } => 422,
            Self::RateLimited { .. } => 429,
            Self::Busy | Self::Storage(_) => 503,
            Self::Config(_) | Self::Internal(_) => 500,
        }
    }

    /// A stable machine-readable code, for the `code` of a problem document.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::RefreshReuse => "refresh_token_reused",
            Self::InvalidApiKey => "invalid_api_key",
            Self::SecondFactorRequired => "second_factor_required",
            Self::InvalidSecondFactor => "invalid_second_factor",
            Self::WeakPassword { .. } => "weak_password",
            Self::Forbidden { .. } => "forbidden",
            Self::Invalid { .. } => "invalid_input",
            Self::NotFound { .. } => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Busy => "busy",
            Self::Storage(_) => "unavailable",
            Self::Config(_) | Self::Internal(_) => "internal",
        }
    }

    /// The `Retry-After` value in whole seconds (rounded up), for 429 and
    /// the busy 503.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after } => {
                let whole = retry_after.as_secs();
                Some(
                    if retry_after.subsec_nanos() > 0 {
                        whole + 1
                    } else {
                        whole
                    }
                    .max(1),
                )
            }
            Self::Busy => Some(1),
            _ => None,
        }
    }

    /// Shorthand for [`AuthError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`AuthError::Forbidden`].
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::Forbidden {
            reason: reason.into(),
        }
    }
}

impl From<CoreError> for AuthError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { entity } => Self::NotFound { entity },
            CoreError::Invalid { field, reason } => Self::Invalid { field, reason },
            CoreError::Denied(denied) => Self::forbidden(denied.to_string()),
            CoreError::Password(reason) => Self::WeakPassword { reason },
            other => Self::Storage(other.to_string()),
        }
    }
}

impl From<AuthError> for CoreError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::WeakPassword { reason } => Self::Password(reason),
            AuthError::Busy => Self::Password("too many sign-ins in progress; retry".into()),
            other => Self::Storage(other.to_string()),
        }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for AuthError {
    /// A value PostgreSQL refused (SQLSTATE class `22`, e.g. a NUL
    /// character) is invalid input; anything else is a storage failure.
    fn from(e: sqlx::Error) -> Self {
        match hse_core::postgres::refused_value(&e) {
            Some(reason) => Self::invalid("value", reason),
            None => Self::Storage(e.to_string()),
        }
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for AuthError {
    fn from(e: redis::RedisError) -> Self {
        Self::Storage(format!("redis: {e}"))
    }
}

/// Result alias for hse-auth.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_maps_to_the_status_a_client_can_act_on() {
        assert_eq!(AuthError::InvalidCredentials.http_status(), 401);
        assert_eq!(AuthError::forbidden("x").http_status(), 403);
        let limited = AuthError::RateLimited {
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(limited.http_status(), 429);
        assert_eq!(limited.retry_after_secs(), Some(2));
        assert_eq!(limited.code(), "rate_limited");
        assert_eq!(AuthError::Busy.http_status(), 503);
        assert_eq!(AuthError::Storage("db down".into()).http_status(), 503);
        assert_eq!(AuthError::InvalidCredentials.retry_after_secs(), None);
    }

    #[test]
    fn a_refused_password_crosses_into_core_as_a_password_error() {
        let core: CoreError = AuthError::WeakPassword {
            reason: "too short".into(),
        }
        .into();
        assert!(matches!(core, CoreError::Password(r) if r == "too short"));
    }
}
