//! Optional second factor: TOTP (RFC 6238, HMAC-SHA-1, 6 digits, 30 s)
//! with single-use recovery codes.
//!
//! Enrolling shows the shared secret once (base32 and an `otpauth://` URI
//! for authenticator apps); it is stored encrypted with ChaCha20-Poly1305
//! under a server key, bound to the user id, so a dump of the tables does
//! not reveal it. The first valid code confirms the enrollment and returns
//! ten recovery codes (80 bits each), stored only as SHA-256 salted with the
//! user id. A code is accepted one step either side of now, and never twice:
//! the last accepted step is kept and must grow.

use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use hse_core::{SecretHash, UserId};
use rand::TryRng;
use rand::rngs::SysRng;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, Result};
use crate::model::{SecretString, TotpEnrollment};
use crate::store::AuthStore;

const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;
const SECRET_BYTES: usize = 20;
const RECOVERY_CODES: usize = 10;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The HOTP value (RFC 4226) of `secret` at `counter`, `digits` long.
#[must_use]
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret) else {
        return 0; // HMAC takes keys of any length; unreachable.
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    binary % 10_u32.pow(digits)
}

/// The TOTP step (30 s window number) of `at`.
#[must_use]
pub fn step_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(STEP_SECONDS)
}

/// The 6-digit code of `secret` for `step`, zero-padded.
#[must_use]
pub fn code_at(secret: &[u8], step: i64) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    format!("{:06}", hotp(secret, counter, DIGITS))
}

/// RFC 4648 base32 without padding.
#[must_use]
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The server key that seals TOTP secrets. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl SealingKey {
    /// Wraps 32 bytes of key material.
    #[must_use]
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn seal(&self, user: UserId, secret: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_bytes::<12>()?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        let aad = user.as_uuid();
        let payload = Payload {
            msg: secret,
            aad: aad.as_bytes(),
        };
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| AuthError::Internal("sealing TOTP secret".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn open(&self, user: UserId, sealed: &[u8]) -> Result<Vec<u8>> {
        let (nonce, body) = sealed
            .split_at_checked(12)
            .ok_or_else(|| AuthError::Storage("sealed TOTP secret too short".into()))?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        let aad = user.as_uuid();
        let payload = Payload {
            msg: body,
            aad: aad.as_bytes(),
        };
        cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| AuthError::Storage("TOTP secret does not open with this key".into()))
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// What a user sees once when enrolling.
#[derive(Clone, Debug)]
pub struct TotpSetup {
    /// The shared secret in base32, for manual entry.
    pub secret: SecretString,
    /// `otpauth://totp/...` for a QR code.
    pub uri: SecretString,
}

/// TOTP enrollment and verification.
#[derive(Clone, Debug)]
pub struct Totp {
    store: Arc<dyn AuthStore>,
    key: SealingKey,
    issuer: String,
}

impl Totp {
    /// TOTP kept in `store`, secrets sealed with `key`, shown in apps as `issuer`.
    #[must_use]
    pub fn new(store: Arc<dyn AuthStore>, key: SealingKey, issuer: impl Into<String>) -> Self {
        Self {
            store,
            key,
            issuer: issuer.into(),
        }
    }

    /// Starts (or restarts) an enrollment for `user`, labelled `account`.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] when a confirmed enrollment exists.
    pub async fn enroll(
        &self,
        user: UserId,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<TotpSetup> {
        let secret = random_bytes::<SECRET_BYTES>()?;
        let enrollment = TotpEnrollment {
            user_id: user,
            sealed_secret: self.key.seal(user, &secret)?,
            confirmed_at: None,
            last_step: None,
            created_at: now,
        };
        if !self.store.put_totp(&enrollment).await? {
            return Err(AuthError::invalid(
                "totp",
                "already enabled; disable it first",
            ));
        }
        let encoded = base32(&secret);
        let uri = format!(
            "otpauth://totp/{issuer}:{account}?secret={encoded}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
            issuer = uri_component(&self.issuer),
            account = uri_component(account),
        );
        Ok(TotpSetup {
            secret: SecretString::new(encoded),
            uri: SecretString::new(uri),
        })
    }

    /// Confirms an enrollment with its first code; returns the recovery
    /// codes, shown once.
    ///
    /// # Errors
    /// [`AuthError::InvalidSecondFactor`] for a wrong code or no enrollment.
    pub async fn confirm(
        &self,
        user: UserId,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<SecretString>> {
        let enrollment = self.store.totp(user).await?;
        let Some(enrollment) = enrollment.filter(|e| e.confirmed_at.is_none()) else {
            return Err(AuthError::InvalidSecondFactor);
        };
        self.check_code(&enrollment, code, now).await?;
        self.new_recovery_codes(user, now).await
    }

    /// Whether `user` has a confirmed second factor.
    ///
    /// # Errors
    /// A storage error.
    pub async fn is_enabled(&self, user: UserId) -> Result<bool> {
        Ok(self
            .store
            .totp(user)
            .await?
            .is_some_and(|e| e.confirmed_at.is_some()))
    }

    /// Checks a TOTP code, or else a recovery code (spent on use).
    ///
    /// # Errors
    /// [`AuthError::InvalidSecondFactor`] when neither matches.
    pub async fn verify(&self, user: UserId, code: &str, now: DateTime<Utc>) -> Result<()> {
        let enrollment = self.store.totp(user).await?;
        let Some(enrollment) = enrollment.filter(|e| e.confirmed_at.is_some()) else {
            return Err(AuthError::InvalidSecondFactor);
        };
        if is_totp_shaped(code) {
            return self.check_code(&enrollment, code, now).await;
        }
        let hash = recovery_hash(user, code);
        if self.store.use_recovery_code(user, hash, now).await? {
            tracing::info!(user.id = %user, "recovery code used");
            return Ok(());
        }
        Err(AuthError::InvalidSecondFactor)
    }

    /// Replaces the recovery codes; returns the new ones, shown once.
    ///
    /// # Errors
    /// [`AuthError::Internal`] if the RNG fails, or a storage error.
    pub async fn new_recovery_codes(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SecretString>> {
        let codes = (0..RECOVERY_CODES)
            .map(|_| recovery_code())
            .collect::<Result<Vec<_>>>()?;
        let hashes: Vec<SecretHash> = codes.iter().map(|c| recovery_hash(user, c)).collect();
        self.store
            .replace_recovery_codes(user, &hashes, now)
            .await?;
        Ok(codes.into_iter().map(SecretString::new).collect())
    }

    /// Removes the second factor and its recovery codes.
    ///
    /// # Errors
    /// A storage error.
    pub async fn disable(&self, user: UserId) -> Result<()> {
        self.store.delete_totp(user).await
    }

    async fn check_code(&self, e: &TotpEnrollment, code: &str, now: DateTime<Utc>) -> Result<()> {
        let secret = self.key.open(e.user_id, &e.sealed_secret)?;
        let current = step_of(now);
        let matched = (current - 1..=current + 1).find(|&step| {
            code_at(&secret, step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into()
        });
        let Some(step) = matched else {
            return Err(AuthError::InvalidSecondFactor);
        };
        if !self.store.use_totp_step(e.user_id, step, now).await? {
            return Err(AuthError::InvalidSecondFactor);
        }
        Ok(())
    }
}

fn is_totp_shaped(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

fn recovery_code() -> Result<String> {
    let encoded = base32(&random_bytes::<10>()?);
    Ok(format!(
        "{}-{}-{}-{}",
        &encoded[0..4],
        &encoded[4..8],
        &encoded[8..12],
        &encoded[12..16]
    ))
}

fn recovery_hash(user: UserId, code: &str) -> SecretHash {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let mut h = Sha256::new();
    h.update(user.as_uuid().as_bytes());
    h.update(normal.as_bytes());
    SecretHash(h.finalize().into())
}

fn uri_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    SysRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| AuthError::Internal(format!("OS random generator: {e}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryAuthStore;

    #[test]
    fn hotp_and_totp_match_the_rfc_test_vectors() {
        let secret = b"12345678901234567890";
        // RFC 4226 appendix D.
        assert_eq!(hotp(secret, 0, 6), 755_224);
        assert_eq!(hotp(secret, 9, 6), 520_489);
        // RFC 6238 appendix B (SHA-1, 8 digits).
        assert_eq!(hotp(secret, 59 / 30, 8), 94_287_082);
        assert_eq!(hotp(secret, 1_111_111_109 / 30, 8), 7_081_804);
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let key = SealingKey::new([3; 32]);
        let (user, other) = (UserId::new(), UserId::new());
        let sealed = key.seal(user, b"secret").unwrap();
        assert_eq!(key.open(user, &sealed).unwrap(), b"secret");
        assert!(key.open(other, &sealed).is_err());
        assert!(SealingKey::new([4; 32]).open(user, &sealed).is_err());
    }

    #[tokio::test]
    async fn enroll_confirm_verify_and_recover_without_replay() {
        let totp = Totp::new(
            Arc::new(MemoryAuthStore::new()),
            SealingKey::new([1; 32]),
            "HSE",
        );
        let (user, now) = (UserId::new(), Utc::now());
        let setup = totp.enroll(user, "ana@example.com", now).await.unwrap();
        assert!(
            setup
                .uri
                .expose()
                .starts_with("otpauth://totp/HSE:ana@example.com?secret=")
        );
        let secret = totp
            .key
            .open(
                user,
                &totp.store.totp(user).await.unwrap().unwrap().sealed_secret,
            )
            .unwrap();
        assert!(!totp.is_enabled(user).await.unwrap());
        let codes = totp
            .confirm(user, &code_at(&secret, step_of(now)), now)
            .await
            .unwrap();
        assert_eq!(codes.len(), 10);
        assert!(totp.is_enabled(user).await.unwrap());
        // The same step again is a replay.
        let again = totp
            .verify(user, &code_at(&secret, step_of(now)), now)
            .await;
        assert!(matches!(again, Err(AuthError::InvalidSecondFactor)));
        let later = now + chrono::Duration::seconds(30);
        assert!(
            totp.verify(user, &code_at(&secret, step_of(later)), later)
                .await
                .is_ok()
        );
        let code = codes[0].expose().to_lowercase();
        assert!(totp.verify(user, &code, now).await.is_ok());
        assert!(totp.verify(user, &code, now).await.is_err());
        assert_eq!(totp.store.recovery_codes_left(user).await.unwrap(), 9);
        assert!(totp.enroll(user, "x", now).await.is_err());
    }
}
