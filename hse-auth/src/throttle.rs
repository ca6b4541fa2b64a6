//! The sign-in throttle: growing delays after failed attempts.
//!
//! Failures are counted per key. After `free_attempts` failures, the next
//! attempt must wait `base_delay × 2^(failures − free_attempts)`, capped
//! at `max_delay`, from the last failure. The record expires
//! `forget_after` the last failure.
//!
//! Sign-in ([`SignInThrottle`]) counts by source and account, as OWASP's
//! authentication cheat sheet advises, so that nobody can lock an account
//! out by failing against it. Accounts are keyed by the SHA-256 of the
//! normalised email (unknown accounts are throttled alike and no email
//! lands in Redis), sources by a digest of the client address (IPv6 by
//! its /64, which one host usually holds whole):
//! - per account *and* source, the delays above (default: 3 free): a
//!   source guessing one account is slowed, the owner elsewhere is not;
//!   a successful sign-in clears it;
//! - per source, across accounts (default: 20 free): spraying one
//!   password over many accounts is slowed;
//! - per account, across sources (default: 10 free): applied only to
//!   sources with failures of their own, so many sources guessing one
//!   account are slowed while a source that has not been failing signs in.
//!
//! The per-source and per-account records are never cleared by a success
//! (an attacker's own account must not wash its address clean); they
//! expire. Every check runs before the password hash is checked, and alike
//! for known and unknown accounts, so the answers and their timing tell
//! nothing about which accounts exist. Without a known source, the
//! account alone is counted, as one source.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::error::{AuthError, Result};

/// Failures recorded for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failures {
    /// How many since the last success (or expiry).
    pub count: u32,
    /// When the last one happened.
    pub last: DateTime<Utc>,
}

/// Where failure counts live.
#[async_trait]
pub trait FailureStore: Send + Sync + fmt::Debug {
    /// The failures of `key`, if any not yet forgotten at `now`.
    async fn failures(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Failures>>;
    /// Records one failure at `now`; the record is forgotten `forget_after` later.
    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        forget_after: Duration,
    ) -> Result<Failures>;
    /// Forgets `key`'s failures.
    async fn clear(&self, key: &str) -> Result<()>;
}

/// Failure counts in process memory.
#[derive(Debug, Default)]
pub struct MemoryFailureStore {
    entries: Mutex<HashMap<String, (Failures, DateTime<Utc>)>>,
}

impl MemoryFailureStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl FailureStore for MemoryFailureStore {
    async fn failures(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Failures>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(entries
            .get(key)
            .filter(|(_, forget_at)| now < *forget_at)
            .map(|(f, _)| *f))
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        forget_after: Duration,
    ) -> Result<Failures> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, (_, forget_at)| now < *forget_at);
        let count = entries.get(key).map_or(0, |(f, _)| f.count);
        let failures = Failures {
            count: count.saturating_add(1),
            last: now,
        };
        entries.insert(key.to_owned(), (failures, now + forget_after));
        Ok(failures)
    }

    async fn clear(&self, key: &str) -> Result<()> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(())
    }
}

/// How the throttle grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures allowed without delay (default 3).
    pub free_attempts: u32,
    /// The first delay (default 1 s), doubling with each further failure.
    pub base_delay: Duration,
    /// The longest delay (default 15 minutes).
    pub max_delay: Duration,
    /// When a record is forgotten after its last failure (default 1 hour).
    pub forget_after: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_attempts: 3,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            forget_after: Duration::hours(1),
        }
    }
}

impl ThrottleConfig {
    /// The wait imposed after `failures` failures.
    #[must_use]
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(extra) = failures.checked_sub(self.free_attempts) else {
            return Duration::zero();
        };
        let factor = 1_i32.checked_shl(extra.min(30)).unwrap_or(i32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// The sign-in throttle.
#[derive(Clone, Debug)]
pub struct LoginThrottle {
    store: Arc<dyn FailureStore>,
    config: ThrottleConfig,
}

impl LoginThrottle {
    /// A throttle counting in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn FailureStore>, config: ThrottleConfig) -> Self {
        Self { store, config }
    }

    /// The key of an account, from its (normalised) email.
    #[must_use]
    pub fn key_for(email: &str) -> String {
        let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
        format!("login:{}", hex::encode(digest))
    }

    /// Whether an attempt for `key` may go ahead at `now`.
    ///
    /// # Errors
    /// [`AuthError::RateLimited`] with the remaining wait.
    pub async fn check(&self, key: &str, now: DateTime<Utc>) -> Result<()> {
        let Some(f) = self.store.failures(key, now).await? else {
            return Ok(());
        };
        let ready_at = f.last + self.config.delay_after(f.count);
        if now < ready_at {
            let retry_after = (ready_at - now).to_std().unwrap_or_default();
            return Err(AuthError::RateLimited { retry_after });
        }
        Ok(())
    }

    /// Records a failed attempt.
    ///
    /// # Errors
    /// A storage error.
    pub async fn failed(&self, key: &str, now: DateTime<Utc>) -> Result<()> {
        self.store
            .record_failure(key, now, self.config.forget_after)
            .await
            .map(|_| ())
    }

    /// Clears the record after a successful sign-in.
    ///
    /// # Errors
    /// A storage error.
    pub async fn succeeded(&self, key: &str) -> Result<()> {
        self.store.clear(key).await
    }
}

/// Where a sign-in attempt comes from: the client's address, when known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Source(Option<IpAddr>);

impl Source {
    /// An attempt from `ip`.
    #[must_use]
    pub fn ip(ip: IpAddr) -> Self {
        Self(Some(ip))
    }

    /// An attempt from an unknown place (counted per account only).
    #[must_use]
    pub fn unknown() -> Self {
        Self(None)
    }

    /// The digest of the address (an IPv6 address by its /64), if known.
    fn digest(self) -> Option<String> {
        let bytes = match self.0? {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.octets().to_vec(),
                None => v6.octets()[..8].to_vec(),
            },
        };
        Some(hex::encode(&Sha256::digest(&bytes)[..16]))
    }
}

/// The records one sign-in attempt is counted under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptKeys {
    /// Account and source together (the account alone without a source).
    pair: String,
    /// The source across accounts, with the account across sources.
    spread: Option<(String, String)>,
}

impl AttemptKeys {
    /// The keys of an attempt on `email` from `source`.
    #[must_use]
    pub fn new(email: &str, source: Source) -> Self {
        let account = LoginThrottle::key_for(email);
        match source.digest() {
            None => Self {
                pair: account,
                spread: None,
            },
            Some(src) => Self {
                pair: format!("{account}:{src}"),
                spread: Some((format!("login-src:{src}"), format!("{account}:any"))),
            },
        }
    }

    /// The key to rate-limit attempts by: the source, or the account
    /// when the source is unknown.
    #[must_use]
    pub fn rate_key(&self) -> &str {
        self.spread.as_ref().map_or(&self.pair, |(src, _)| src)
    }
}

/// How [`SignInThrottle`] grows its three records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignInThrottleConfig {
    /// Per account and source (default [`ThrottleConfig::default`]).
    pub pair: ThrottleConfig,
    /// Per source, across accounts (default: 20 free attempts).
    pub source: ThrottleConfig,
    /// Per account, across sources, for failing sources (default: 10 free).
    pub account: ThrottleConfig,
}

impl Default for SignInThrottleConfig {
    fn default() -> Self {
        let base = ThrottleConfig::default();
        Self {
            pair: base,
            source: ThrottleConfig {
                free_attempts: 20,
                ..base
            },
            account: ThrottleConfig {
                free_attempts: 10,
                ..base
            },
        }
    }
}

/// The sign-in throttle by source and account (see the module header).
#[derive(Clone, Debug)]
pub struct SignInThrottle {
    store: Arc<dyn FailureStore>,
    config: SignInThrottleConfig,
}

impl SignInThrottle {
    /// A throttle counting in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn FailureStore>, config: SignInThrottleConfig) -> Self {
        Self { store, config }
    }

    fn with(&self, config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle::new(self.store.clone(), config)
    }

    /// Whether the attempt may go ahead at `now`.
    ///
    /// # Errors
    /// [`AuthError::RateLimited`] with the remaining wait.
    pub async fn check(&self, keys: &AttemptKeys, now: DateTime<Utc>) -> Result<()> {
        self.with(self.config.pair).check(&keys.pair, now).await?;
        let Some((source, account)) = &keys.spread else {
            return Ok(());
        };
        let by_source = self.with(self.config.source);
        by_source.check(source, now).await?;
        if self.store.failures(source, now).await?.is_some() {
            self.with(self.config.account).check(account, now).await?;
        }
        Ok(())
    }

    /// Records a failed attempt in every record.
    ///
    /// # Errors
    /// A storage error.
    pub async fn failed(&self, keys: &AttemptKeys, now: DateTime<Utc>) -> Result<()> {
        self.with(self.config.pair).failed(&keys.pair, now).await?;
        if let Some((source, account)) = &keys.spread {
            self.with(self.config.source).failed(source, now).await?;
            self.with(self.config.account).failed(account, now).await?;
        }
        Ok(())
    }

    /// Clears the account-and-source record after a successful sign-in.
    ///
    /// # Errors
    /// A storage error.
    pub async fn succeeded(&self, keys: &AttemptKeys) -> Result<()> {
        self.store.clear(&keys.pair).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_after_the_free_attempts_and_stop_at_the_cap() {
        let c = ThrottleConfig::default();
        assert_eq!(c.delay_after(3), Duration::zero() + Duration::seconds(1));
        assert_eq!(c.delay_after(2), Duration::zero());
        assert_eq!(c.delay_after(5), Duration::seconds(4));
        assert_eq!(c.delay_after(40), Duration::minutes(15));
    }

    proptest::proptest! {
        #[test]
        fn delays_never_shrink_and_never_pass_the_cap(n in 0u32..10_000) {
            let c = ThrottleConfig::default();
            proptest::prop_assert!(c.delay_after(n) <= c.delay_after(n + 1));
            proptest::prop_assert!(c.delay_after(n + 1) <= c.max_delay);
        }
    }

    #[tokio::test]
    async fn failures_delay_the_next_attempt_and_success_or_time_clears_them() {
        let throttle = LoginThrottle::new(
            Arc::new(MemoryFailureStore::new()),
            ThrottleConfig::default(),
        );
        let key = LoginThrottle::key_for("Ana@Example.com");
        assert_eq!(key, LoginThrottle::key_for("ana@example.com"));
        let t0 = Utc::now();
        for _ in 0..4 {
            throttle.failed(&key, t0).await.unwrap();
        }
        let err = throttle.check(&key, t0).await.unwrap_err();
        assert!(
            matches!(err, AuthError::RateLimited { retry_after } if retry_after.as_secs() == 2)
        );
        assert!(
            throttle
                .check(&key, t0 + Duration::seconds(2))
                .await
                .is_ok()
        );
        assert!(throttle.check(&key, t0 + Duration::hours(2)).await.is_ok());
        throttle.succeeded(&key).await.unwrap();
        assert!(throttle.check(&key, t0).await.is_ok());
    }
}
