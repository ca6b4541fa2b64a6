//! Passwords: the policy, and Argon2id hashing off the async runtime.
//!
//! Policy (OWASP ASVS 5.0 V6.2): at least 8 characters, up to 128 allowed,
//! no composition rules, no truncation, and none of the ~8,000 most common
//! passwords of 8+ characters (`data/common-passwords.txt`). Hashes are
//! Argon2id PHC strings with a 16-byte salt from the OS RNG; the defaults
//! (m=19456 KiB, t=2, p=1) are the floor, and a stored hash weaker than
//! the configured parameters is reported so the caller can rehash it.
//!
//! Hashing is CPU-bound, so it runs in `spawn_blocking` behind a
//! semaphore: at most `max_concurrent` hashes at once, and a caller that
//! cannot get a slot within `queue_timeout` gets [`AuthError::Busy`]
//! rather than joining an unbounded queue.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as PHC_B64;
use hse_core::CoreError;
use rand::TryRng;
use rand::rngs::SysRng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AuthError, Result};

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most characters a password may have (ASVS asks that 64 be allowed).
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longer sign-in input is refused before hashing (it cannot be a valid
/// password, and hashing it would be wasted work).
const MAX_LOGIN_INPUT_BYTES: usize = MAX_PASSWORD_CHARS * 4;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// Checks a new password against the policy.
///
/// # Errors
/// [`AuthError::WeakPassword`] with a reason to show the user.
pub fn check_policy(password: &str) -> Result<()> {
    let chars = password.chars().count();
    let refuse = |reason: &str| {
        Err(AuthError::WeakPassword {
            reason: reason.to_owned(),
        })
    };
    if chars < MIN_PASSWORD_CHARS {
        return refuse("must have at least 8 characters");
    }
    if chars > MAX_PASSWORD_CHARS {
        return refuse("must have at most 128 characters");
    }
    if is_common(password) {
        return refuse("is one of the most common passwords; choose another");
    }
    Ok(())
}

/// Whether the password (case-insensitively) is on the common list.
#[must_use]
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP's minimum for Argon2id: m=19456 KiB, t=2, p=1 (the default).
    pub const OWASP_MINIMUM: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    fn argon2(self) -> Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AuthError::Config(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Whether a hash made with `other` is at least as strong as this.
    fn is_met_by(self, other: Self) -> bool {
        other.memory_kib >= self.memory_kib
            && other.iterations >= self.iterations
            && other.parallelism >= self.parallelism
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP_MINIMUM
    }
}

/// How passwords are hashed and how much hashing may run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordConfig {
    /// Argon2id parameters of new hashes.
    pub params: HashParams,
    /// Hashes running at once (default: 2).
    pub max_concurrent: usize,
    /// How long a caller waits for a slot before [`AuthError::Busy`]
    /// (default: 2 s).
    pub queue_timeout: Duration,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            params: HashParams::default(),
            max_concurrent: 2,
            queue_timeout: Duration::from_secs(2),
        }
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The password is right.
    Valid {
        /// The hash is weaker than the current parameters: store a new one.
        needs_rehash: bool,
    },
    /// The password is wrong (or the stored hash unusable).
    Invalid,
}

/// Hashes and verifies passwords with Argon2id, off the async runtime.
#[derive(Debug, Clone)]
pub struct Passwords {
    config: PasswordConfig,
    argon2: Argon2<'static>,
    slots: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl Passwords {
    /// Builds the hasher.
    ///
    /// # Errors
    /// [`AuthError::Config`] when the parameters are invalid for Argon2 or
    /// `max_concurrent` is 0.
    pub fn build(config: PasswordConfig) -> Result<Self> {
        if config.max_concurrent == 0 {
            return Err(AuthError::Config(
                "max_concurrent must be at least 1".into(),
            ));
        }
        if !HashParams::OWASP_MINIMUM.is_met_by(config.params) {
            tracing::warn!(
                argon2.memory_kib = config.params.memory_kib,
                argon2.iterations = config.params.iterations,
                "password hashing below the OWASP minimum; acceptable only in tests"
            );
        }
        Ok(Self {
            argon2: config.params.argon2()?,
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            dummy: dummy_hash(config.params).into(),
            config,
        })
    }

    /// Checks the policy and returns the PHC string of `password`.
    ///
    /// # Errors
    /// [`AuthError::WeakPassword`] when the policy refuses it,
    /// [`AuthError::Busy`] when no hashing slot frees up in time.
    pub async fn hash(&self, password: &str) -> Result<String> {
        check_policy(password)?;
        self.hash_unchecked(password.to_owned()).await
    }

    /// Verifies `password` against a stored PHC string.
    ///
    /// # Errors
    /// [`AuthError::Busy`] when no hashing slot frees up in time.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verification> {
        if password.len() > MAX_LOGIN_INPUT_BYTES {
            return Ok(Verification::Invalid);
        }
        let permit = self.slot().await?;
        let (argon2, wanted) = (self.argon2.clone(), self.config.params);
        let (password, stored) = (password.to_owned(), stored.to_owned());
        blocking(permit, move || {
            verify_blocking(&argon2, wanted, &password, &stored)
        })
        .await
    }

    /// Spends the same work as [`Passwords::verify`] against a dummy hash,
    /// so an unknown account answers in the same time as a wrong password.
    ///
    /// # Errors
    /// [`AuthError::Busy`] when no hashing slot frees up in time.
    pub async fn verify_dummy(&self, password: &str) -> Result<()> {
        let dummy = Arc::clone(&self.dummy);
        self.verify(password, &dummy).await.map(|_| ())
    }

    /// Hashes an already-accepted password (a rehash at sign-in: the
    /// policy may have changed since it was set, and refusing it now would
    /// lock the user out).
    ///
    /// # Errors
    /// [`AuthError::Busy`] when no hashing slot frees up in time.
    pub async fn hash_without_policy(&self, password: &str) -> Result<String> {
        self.hash_unchecked(password.to_owned()).await
    }

    async fn hash_unchecked(&self, password: String) -> Result<String> {
        let permit = self.slot().await?;
        let argon2 = self.argon2.clone();
        blocking(permit, move || hash_blocking(&argon2, &password)).await?
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit> {
        let acquire = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.config.queue_timeout, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(AuthError::Busy),
            Err(_elapsed) => {
                metrics::counter!("hse_auth_hashing_busy_total").increment(1);
                tracing::warn!(
                    hashing.max_concurrent = self.config.max_concurrent,
                    "password hashing saturated; refusing"
                );
                Err(AuthError::Busy)
            }
        }
    }
}

#[async_trait]
impl hse_core::invitation::PasswordHasher for Passwords {
    async fn hash_password(&self, password: &str) -> Result<String, CoreError> {
        self.hash(password).await.map_err(CoreError::from)
    }
}

async fn blocking<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let out = work();
        drop(permit);
        metrics::histogram!("hse_auth_argon2_seconds").record(started.elapsed().as_secs_f64());
        out
    })
    .await
    .map_err(|e| AuthError::Internal(format!("hashing task: {e}")))
}

/// A PHC string with the configured parameters that no password matches:
/// verifying against it costs exactly one Argon2 run, like a real hash,
/// without spending one to build it.
fn dummy_hash(p: HashParams) -> String {
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        p.memory_kib,
        p.iterations,
        p.parallelism,
        PHC_B64.encode([0x5a_u8; 16]),
        PHC_B64.encode([0_u8; 32]),
    )
}

fn hash_blocking(argon2: &Argon2<'_>, password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| AuthError::Internal(format!("OS random generator: {e}")))?;
    argon2
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))
}

fn verify_blocking(
    argon2: &Argon2<'_>,
    wanted: HashParams,
    password: &str,
    stored: &str,
) -> Verification {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verification::Invalid;
    };
    if argon2
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verification::Invalid;
    }
    Verification::Valid {
        needs_rehash: !params_of(&parsed).is_some_and(|p| wanted.is_met_by(p)),
    }
}

fn params_of(hash: &PasswordHash) -> Option<HashParams> {
    if hash.algorithm.as_str() != "argon2id" {
        return None;
    }
    let p = Params::try_from(hash).ok()?;
    Some(HashParams {
        memory_kib: p.m_cost(),
        iterations: p.t_cost(),
        parallelism: p.p_cost(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordConfig {
        PasswordConfig {
            params: HashParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..PasswordConfig::default()
        }
    }

    #[test]
    fn the_policy_counts_characters_and_refuses_common_passwords() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("ñandú-ß").is_err());
        assert!(check_policy("correct horse battery").is_ok());
        assert!(check_policy(&"x".repeat(64)).is_ok());
        assert!(check_policy(&"x".repeat(129)).is_err());
        assert!(check_policy("password123").is_err());
        assert!(check_policy("PassWord123").is_err());
        assert!(COMMON.len() > 5_000);
    }

    #[test]
    fn the_default_parameters_are_the_owasp_floor() {
        assert_eq!(PasswordConfig::default().params, HashParams::OWASP_MINIMUM);
        assert_eq!(HashParams::default().memory_kib, 19_456);
    }

    #[tokio::test]
    async fn a_hash_is_an_argon2id_phc_string_that_verifies_only_its_password() {
        let pw = Passwords::build(fast()).unwrap();
        let hash = pw.hash("a long enough secret").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            pw.verify("a long enough secret", &hash).await.unwrap(),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            pw.verify("a long enough secreT", &hash).await.unwrap(),
            Verification::Invalid
        );
        assert_eq!(
            pw.verify("x", "not a hash").await.unwrap(),
            Verification::Invalid
        );
        let dummy = pw.dummy.to_string();
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            pw.verify("hse-dummy", &dummy).await.unwrap(),
            Verification::Invalid
        );
    }

    #[tokio::test]
    async fn a_hash_below_the_current_parameters_needs_a_rehash() {
        let weak = Passwords::build(fast()).unwrap();
        let hash = weak.hash("a long enough secret").await.unwrap();
        let mut stronger = fast();
        stronger.params.iterations = 2;
        let pw = Passwords::build(stronger).unwrap();
        assert_eq!(
            pw.verify("a long enough secret", &hash).await.unwrap(),
            Verification::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn a_legacy_argon2i_hash_verifies_and_is_upgraded() {
        let params = Params::new(64, 1, 1, None).unwrap();
        let legacy = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password_with_salt(b"a long enough secret", b"legacy-salt-1234")
            .unwrap()
            .to_string();
        assert!(legacy.starts_with("$argon2i$"));
        let pw = Passwords::build(fast()).unwrap();
        assert_eq!(
            pw.verify("a long enough secret", &legacy).await.unwrap(),
            Verification::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn a_saturated_hasher_answers_busy_instead_of_queueing() {
        let config = PasswordConfig {
            max_concurrent: 1,
            queue_timeout: Duration::from_millis(10),
            ..fast()
        };
        let pw = Passwords::build(config).unwrap();
        let held = pw.slot().await.unwrap();
        assert!(matches!(
            pw.hash("a long enough secret").await,
            Err(AuthError::Busy)
        ));
        drop(held);
        assert!(pw.hash("a long enough secret").await.is_ok());
    }
}
