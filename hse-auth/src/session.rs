//! What a sign-in produces: a [`Session`], or a second-factor challenge
//! ([`LoginOutcome`]); and what an API key produces ([`KeyPrincipal`]).

use chrono::{DateTime, Utc};
use hse_core::Principal;

use crate::cookie;
use crate::model::ApiKeyId;
use crate::refresh::IssuedRefresh;
use crate::token::IssuedToken;

/// A signed-in session: an access token, a refresh token, and who.
#[derive(Clone, Debug)]
pub struct Session {
    /// The access token.
    pub access: IssuedToken,
    /// The refresh token.
    pub refresh: IssuedRefresh,
    /// Who signed in.
    pub principal: Principal,
}

impl Session {
    /// Seconds until the access token expires, as of `now` (`expires_in`).
    #[must_use]
    pub fn expires_in(&self, now: DateTime<Utc>) -> i64 {
        (self.access.expires_at - now).num_seconds().max(0)
    }

    /// The two `Set-Cookie` values for a browser, as of `now`.
    #[must_use]
    pub fn cookies(&self, now: DateTime<Utc>) -> [String; 2] {
        [
            cookie::access_cookie(self.access.token.expose(), self.access.expires_at - now),
            cookie::refresh_cookie(self.refresh.token.expose(), self.refresh.expires_at - now),
        ]
    }
}

/// The answer to a correct email and password.
#[derive(Clone, Debug)]
pub enum LoginOutcome {
    /// Signed in.
    SignedIn(Session),
    /// The account has a second factor: call
    /// [`crate::Authenticator::complete_second_factor`] with this challenge.
    SecondFactorRequired {
        /// A short-lived token proving the password step.
        challenge: IssuedToken,
    },
}

/// A request authenticated with an API key.
#[derive(Clone, Debug)]
pub struct KeyPrincipal {
    /// The creator's principal, narrowed to the key's permissions.
    pub principal: Principal,
    /// The key used.
    pub key_id: ApiKeyId,
}
