//! JWT access tokens (RFC 9068 shape, RFC 8725 hygiene).
//!
//! Access tokens live at most 15 minutes and carry `iss`, `aud`, `sub`,
//! `exp`, `iat`, `nbf`, `jti`, `typ` and the principal's scope reference.
//! They are signed with Ed25519 by default (HS256 selectable). Validation
//! accepts only the configured algorithm (so `none`, and HS256 keyed with
//! the public key, are refused before any signature check), requires
//! `exp`, `iss`, `aud`, `sub` and `nbf`, checks times against the injected
//! clock with a leeway of at most 60 s, and refuses any other `typ`.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::SigningKey as Ed25519Key;
use hse_core::{Principal, Scope, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::TryRng;
use rand::rngs::SysRng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::BoundedMap;
use crate::error::{AuthError, Result};
use crate::model::{FamilyId, SecretString};

/// The longest access-token lifetime accepted.
pub const MAX_ACCESS_TTL: Duration = Duration::minutes(15);
/// The largest clock-skew leeway accepted.
pub const MAX_LEEWAY: Duration = Duration::seconds(60);

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), before the seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// What a signed token is for; validation refuses any other kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// An access token.
    Access,
    /// A short-lived proof that the password was right, waiting for the
    /// second factor.
    SecondFactor,
}

/// The key that signs and verifies tokens. `Debug` prints no key material.
#[derive(Clone)]
pub struct SigningKey {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
    public: Option<[u8; 32]>,
}

impl SigningKey {
    /// An Ed25519 key from its 32-byte seed.
    #[must_use]
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        let public = Ed25519Key::from_bytes(seed).verifying_key().to_bytes();
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(seed);
        Self {
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(&public),
            key_id: key_id(&public),
            public: Some(public),
        }
    }

    /// A fresh Ed25519 key from the OS RNG (tokens die with the process:
    /// for production, load a persistent seed).
    ///
    /// # Errors
    /// [`AuthError::Internal`] if the OS RNG fails.
    pub fn generate_ed25519() -> Result<Self> {
        let mut seed = [0u8; 32];
        SysRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| AuthError::Internal(format!("OS random generator: {e}")))?;
        Ok(Self::ed25519_from_seed(&seed))
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    ///
    /// # Errors
    /// [`AuthError::Config`] when the secret is shorter than 32 bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self> {
        if secret.len() < 32 {
            return Err(AuthError::Config(
                "an HS256 secret needs at least 32 bytes".into(),
            ));
        }
        Ok(Self {
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            key_id: key_id(secret),
            public: None,
        })
    }

    /// The Ed25519 public key, to publish (`None` for HS256).
    #[must_use]
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.public
    }

    /// The JWS algorithm name, e.g. `EdDSA`.
    #[must_use]
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::HS256 => "HS256",
            _ => "EdDSA",
        }
    }
}

fn key_id(material: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(material)[..8])
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Who issues tokens, for whom, for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    /// `iss`, e.g. `https://hse.example.com`.
    pub issuer: String,
    /// `aud`, e.g. `hse-api`.
    pub audience: String,
    /// Access-token lifetime (default and maximum 15 minutes).
    pub access_ttl: Duration,
    /// Clock-skew leeway on `exp`, `nbf` and `iat` (default 30 s, max 60 s).
    pub leeway: Duration,
}

impl TokenConfig {
    /// Defaults for `issuer` and `audience`.
    #[must_use]
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            access_ttl: MAX_ACCESS_TTL,
            leeway: Duration::seconds(30),
        }
    }
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: Uuid,
    /// What the token is for.
    pub typ: TokenKind,
    /// The principal's scope reference, e.g. `organization:<uuid>`.
    pub scope: String,
    /// The session (refresh family) the token belongs to, so ending the
    /// session ends the token ([`crate::denylist`]). Absent on tokens of
    /// no session (second-factor challenges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<FamilyId>,
}

/// A freshly signed token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The compact JWS, to hand to the client.
    pub token: SecretString,
    /// Its id.
    pub jti: Uuid,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Issues and verifies signed tokens.
#[derive(Clone, Debug)]
pub struct AccessTokens {
    key: SigningKey,
    previous: Vec<SigningKey>,
    config: TokenConfig,
    validation: Validation,
    /// Claims of tokens whose signature, issuer, audience and kind were
    /// verified: a repeated token skips the signature check (its times
    /// are still checked on every use).
    verified: Arc<BoundedMap<String, AccessClaims>>,
}

/// How many verified tokens one process remembers.
const VERIFIED_TOKENS: usize = 16_384;

impl AccessTokens {
    /// Builds the issuer/verifier.
    ///
    /// # Errors
    /// [`AuthError::Config`] when the lifetime exceeds 15 minutes or is not
    /// positive, or the leeway exceeds 60 s or is negative.
    pub fn build(key: SigningKey, config: TokenConfig) -> Result<Self> {
        if config.access_ttl > MAX_ACCESS_TTL || config.access_ttl <= Duration::zero() {
            return Err(AuthError::Config(
                "access_ttl must be within 15 minutes".into(),
            ));
        }
        if config.leeway > MAX_LEEWAY || config.leeway < Duration::zero() {
            return Err(AuthError::Config("leeway must be within 60 s".into()));
        }
        let validation = validation(&key, &config);
        Ok(Self {
            key,
            previous: Vec::new(),
            config,
            validation,
            verified: Arc::new(BoundedMap::new(VERIFIED_TOKENS)),
        })
    }

    /// Also accepts tokens signed by `previous` keys, chosen by the token's
    /// `kid`, so a key rotation does not sign everyone out. New tokens are
    /// always signed with the current key.
    ///
    /// # Errors
    /// [`AuthError::Config`] when a previous key uses another algorithm
    /// (validation allows exactly one).
    pub fn with_previous_keys(mut self, previous: Vec<SigningKey>) -> Result<Self> {
        if previous.iter().any(|k| k.algorithm != self.key.algorithm) {
            return Err(AuthError::Config(
                "previous signing keys must use the current algorithm".into(),
            ));
        }
        self.previous = previous;
        Ok(self)
    }

    /// The public keys as a JWK Set (RFC 7517), for partners that verify
    /// tokens themselves; empty for HS256.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        use base64::Engine as _;
        let keys: Vec<serde_json::Value> = std::iter::once(&self.key)
            .chain(&self.previous)
            .filter_map(|k| k.public.map(|public| (k, public)))
            .map(|(k, public)| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                    "kid": k.key_id,
                    "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    fn key_for(&self, token: &str) -> &SigningKey {
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        kid.and_then(|kid| self.previous.iter().find(|k| k.key_id == kid))
            .unwrap_or(&self.key)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Signs an access token for `principal`, outside any session.
    ///
    /// # Errors
    /// [`AuthError::Internal`] if signing fails.
    pub fn issue(&self, principal: &Principal, now: DateTime<Utc>) -> Result<IssuedToken> {
        let scope = scope_ref(&principal.scope());
        self.sign(
            principal.user_id,
            scope,
            TokenKind::Access,
            self.config.access_ttl,
            now,
        )
    }

    /// Signs an access token for `principal` in `session` (its `sid`).
    ///
    /// # Errors
    /// [`AuthError::Internal`] if signing fails.
    pub fn issue_in_session(
        &self,
        principal: &Principal,
        session: FamilyId,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        let scope = scope_ref(&principal.scope());
        self.sign_claims(
            principal.user_id,
            scope,
            TokenKind::Access,
            self.config.access_ttl,
            Some(session),
            now,
        )
    }

    /// The latest moment a token issued at `now` may still be accepted:
    /// its lifetime plus the leeway.
    #[must_use]
    pub fn accepted_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.config.access_ttl + self.config.leeway
    }

    /// Signs a token of `kind` for `user`, valid for `ttl` (capped at the
    /// access lifetime).
    ///
    /// # Errors
    /// [`AuthError::Internal`] if signing fails.
    pub fn sign(
        &self,
        user: UserId,
        scope: String,
        kind: TokenKind,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        self.sign_claims(user, scope, kind, ttl, None, now)
    }

    fn sign_claims(
        &self,
        user: UserId,
        scope: String,
        kind: TokenKind,
        ttl: Duration,
        sid: Option<FamilyId>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        let expires_at = now + ttl.min(self.config.access_ttl);
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: user,
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            jti: Uuid::now_v7(),
            typ: kind,
            scope,
            sid,
        };
        let mut header = Header::new(self.key.algorithm);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.key.key_id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding)
            .map_err(|e| AuthError::Internal(format!("jwt signing: {e}")))?;
        Ok(IssuedToken {
            token: SecretString::new(token),
            jti: claims.jti,
            expires_at,
        })
    }

    /// Verifies a token of `kind` at `now` and returns its claims.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for anything but a well-signed token of
    /// this issuer, audience and kind, inside its validity window.
    pub fn verify(&self, token: &str, kind: TokenKind, now: DateTime<Utc>) -> Result<AccessClaims> {
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => self.verify_signature(token)?,
        };
        if claims.typ != kind {
            tracing::debug!(typ = ?claims.typ, "token of another kind refused");
            return Err(AuthError::InvalidToken);
        }
        check_times(&claims, now, self.config.leeway)?;
        Ok(claims)
    }

    /// Checks signature, issuer and audience, and remembers the claims.
    fn verify_signature(&self, token: &str) -> Result<AccessClaims> {
        let data = jsonwebtoken::decode::<AccessClaims>(
            token,
            &self.key_for(token).decoding,
            &self.validation,
        )
        .map_err(|e| {
            tracing::debug!(error = %e, "token refused");
            AuthError::InvalidToken
        })?;
        self.verified.insert(token.to_owned(), data.claims.clone());
        Ok(data.claims)
    }
}

fn validation(key: &SigningKey, config: &TokenConfig) -> Validation {
    let mut v = Validation::new(key.algorithm);
    v.set_issuer(&[&config.issuer]);
    v.set_audience(&[&config.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
    // Times are checked against the injected clock in `check_times`.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.leeway = 0;
    v
}

fn check_times(claims: &AccessClaims, now: DateTime<Utc>, leeway: Duration) -> Result<()> {
    let (now, leeway) = (now.timestamp(), leeway.num_seconds());
    let expired = now >= claims.exp.saturating_add(leeway);
    let early = now.saturating_add(leeway) < claims.nbf;
    let from_future = now.saturating_add(leeway) < claims.iat;
    if expired || early || from_future {
        tracing::debug!(
            expired,
            early,
            from_future,
            "token outside its validity window"
        );
        return Err(AuthError::InvalidToken);
    }
    Ok(())
}

/// A compact reference to a scope, as carried in tokens:
/// `platform`, `partner:<id>`, `organization:<id>` or `none`.
#[must_use]
pub fn scope_ref(scope: &Scope) -> String {
    match scope {
        Scope::Platform => "platform".into(),
        Scope::Partner { partner_company_id } => format!("partner:{partner_company_id}"),
        Scope::Organization {
            organization_id, ..
        } => format!("organization:{organization_id}"),
        Scope::Nothing => "none".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AccessTokens {
        let key = SigningKey::ed25519_from_seed(&[7; 32]);
        AccessTokens::build(key, TokenConfig::new("https://hse.test", "hse-api")).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_and_carries_every_required_claim() {
        let t = tokens();
        let now = Utc::now();
        let user = UserId::new();
        let issued = t
            .sign(
                user,
                "platform".into(),
                TokenKind::Access,
                MAX_ACCESS_TTL,
                now,
            )
            .unwrap();
        let claims = t
            .verify(issued.token.expose(), TokenKind::Access, now)
            .unwrap();
        assert_eq!(claims.sub, user);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.iss, "https://hse.test");
    }

    #[test]
    fn lifetimes_above_fifteen_minutes_and_leeways_above_a_minute_are_refused() {
        let key = SigningKey::ed25519_from_seed(&[7; 32]);
        let mut config = TokenConfig::new("i", "a");
        config.access_ttl = Duration::minutes(16);
        assert!(AccessTokens::build(key.clone(), config.clone()).is_err());
        config.access_ttl = Duration::minutes(5);
        config.leeway = Duration::seconds(61);
        assert!(AccessTokens::build(key, config).is_err());
    }

    #[test]
    fn tokens_of_a_previous_key_verify_only_while_that_key_is_listed() {
        let old = SigningKey::ed25519_from_seed(&[1; 32]);
        let config = TokenConfig::new("i", "a");
        let before = AccessTokens::build(old.clone(), config.clone()).unwrap();
        let (now, user) = (Utc::now(), UserId::new());
        let token = before
            .sign(
                user,
                "platform".into(),
                TokenKind::Access,
                MAX_ACCESS_TTL,
                now,
            )
            .unwrap();
        let current = SigningKey::ed25519_from_seed(&[2; 32]);
        let after = AccessTokens::build(current.clone(), config.clone()).unwrap();
        assert!(
            after
                .verify(token.token.expose(), TokenKind::Access, now)
                .is_err()
        );
        let rotated = after.with_previous_keys(vec![old]).unwrap();
        let claims = rotated.verify(token.token.expose(), TokenKind::Access, now);
        assert_eq!(claims.unwrap().sub, user);
        assert_eq!(rotated.jwks()["keys"].as_array().map(Vec::len), Some(2));
        let hs = SigningKey::hs256(&[9; 32]).unwrap();
        let mixed = AccessTokens::build(current, config).unwrap();
        assert!(mixed.with_previous_keys(vec![hs]).is_err());
    }

    #[test]
    fn short_hs256_secrets_are_refused_and_keys_print_no_material() {
        assert!(SigningKey::hs256(b"too short").is_err());
        let key = SigningKey::hs256(&[9; 32]).unwrap();
        assert!(!format!("{key:?}").contains("9, 9"));
    }
}
