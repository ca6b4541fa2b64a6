//! What the sign-in service runs on ([`AuthDeps`]) and how it behaves
//! ([`AuthConfig`]). Libraries never read the environment: the server
//! builds these from its `HSE_*` variables.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use hse_core::clock::{Clock, SystemClock};

use crate::api_key::KeyDigest;
use crate::memory::MemoryAuthStore;
use crate::password::PasswordConfig;
use crate::rate_limit::{MemoryRateLimiter, Quota, RateLimiter};
use crate::refresh::DEFAULT_REFRESH_TTL;
use crate::store::{AuthStore, UserDirectory};
use crate::throttle::{FailureStore, MemoryFailureStore, SignInThrottleConfig, ThrottleConfig};
use crate::token::{SigningKey, TokenConfig};
use crate::totp::SealingKey;

/// The adapters the service runs on.
#[derive(Clone, Debug)]
pub struct AuthDeps {
    /// Users and principals (hse-core's tenancy store).
    pub directory: Arc<dyn UserDirectory>,
    /// Refresh families, API keys, usage, TOTP.
    pub store: Arc<dyn AuthStore>,
    /// Per-account and per-key rate limits.
    pub limiter: Arc<dyn RateLimiter>,
    /// Sign-in failure counts.
    pub failures: Arc<dyn FailureStore>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl AuthDeps {
    /// In-memory adapters on the system clock, for one process.
    #[must_use]
    pub fn in_memory(directory: Arc<dyn UserDirectory>) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self {
            directory,
            store: Arc::new(MemoryAuthStore::new()),
            limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
            failures: Arc::new(MemoryFailureStore::new()),
            clock,
        }
    }
}

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The token signing key.
    pub signing_key: SigningKey,
    /// Earlier signing keys whose tokens are still accepted (key rotation).
    pub previous_keys: Vec<SigningKey>,
    /// Issuer, audience, lifetimes.
    pub tokens: TokenConfig,
    /// Hashing parameters and concurrency.
    pub passwords: PasswordConfig,
    /// Absolute lifetime of a sign-in (default 30 days).
    pub refresh_ttl: Duration,
    /// A spent refresh token presented again within this window is refused
    /// without revoking its family (default zero: always revoke).
    pub refresh_reuse_grace: Duration,
    /// Sign-in attempts per source, or per account when the source is
    /// unknown (default: burst 10, then 1 per 6 s).
    pub login_quota: Quota,
    /// Requests per API key (default: burst 100, then 10 per second).
    pub api_key_quota: Quota,
    /// Growing delays after wrong second-factor codes and wrong current
    /// passwords (per user).
    pub throttle: ThrottleConfig,
    /// Growing delays after failed sign-ins, by source and account.
    pub sign_in_throttle: SignInThrottleConfig,
    /// How API key secrets are digested.
    pub key_digest: KeyDigest,
    /// Seals TOTP secrets; without it, TOTP is off.
    pub totp_key: Option<SealingKey>,
    /// The name authenticator apps show for the account (default `HSE`).
    pub totp_issuer: String,
    /// How long the password step waits for the second factor (5 minutes).
    pub second_factor_ttl: Duration,
    /// How long a user's principal (role, grants, assignments, active flag)
    /// read for one request serves the next ones. Zero (the default) reads
    /// it on every request; a positive value bounds how late a change made
    /// elsewhere (another process, or the store directly) is seen, while
    /// [`Authenticator::with_tenancy_revision`](crate::Authenticator::with_tenancy_revision)
    /// makes this process see its own changes at once.
    pub principal_ttl: Duration,
}

impl AuthConfig {
    /// Defaults around a signing key, issuer and audience.
    #[must_use]
    pub fn new(signing_key: SigningKey, issuer: &str, audience: &str) -> Self {
        Self {
            signing_key,
            previous_keys: Vec::new(),
            tokens: TokenConfig::new(issuer, audience),
            passwords: PasswordConfig::default(),
            refresh_ttl: DEFAULT_REFRESH_TTL,
            refresh_reuse_grace: Duration::zero(),
            login_quota: Quota::new(nonzero(10), StdDuration::from_secs(6)),
            api_key_quota: Quota::new(nonzero(100), StdDuration::from_millis(100)),
            throttle: ThrottleConfig::default(),
            sign_in_throttle: SignInThrottleConfig::default(),
            key_digest: KeyDigest::sha256(),
            totp_key: None,
            totp_issuer: "HSE".into(),
            second_factor_ttl: Duration::minutes(5),
            principal_ttl: Duration::zero(),
        }
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
