//! API keys for third parties: `hse_<key id>_<secret>`.
//!
//! The secret is 192 bits from the OS RNG, shown once. The store keeps the
//! key id, a digest of the secret (SHA-256, or HMAC-SHA-256 with a server
//! pepper when one is configured) and its last four characters. Checking a
//! presented key always computes the digest and compares in constant time,
//! and an unknown id, a wrong secret, an expired or a revoked key all give
//! the same [`AuthError::InvalidApiKey`].
//!
//! A key belongs to its creator's tenant scope and carries permissions that
//! must be a subset of the creator's. It acts as its creator, narrowed: the
//! principal of a request made with a key holds only the permissions both
//! the key and (still, today) the creator hold. Keys are read from the
//! store on every use, so a revocation takes effect on every node at once.
//!
//! A key holding `create_api_key` may mint keys: each is its child, holds
//! only permissions the parent holds, and expires no later than it (a
//! later or missing expiry is refused with 400, never clamped silently).
//! Revoking a key revokes every key minted from it, transitively. Made
//! with a key, listing and revoking need `read_api_key` and
//! `delete_api_key` and reach only the keys minted from that key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use hse_core::{ActionName, Principal, Scope, SecretHash};
use rand::TryRng;
use rand::rngs::SysRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{AuthError, Result};
use crate::model::{ApiKey, ApiKeyId, SecretString};
use crate::session::KeyPrincipal;
use crate::store::AuthStore;

const PREFIX: &str = "hse";
const SECRET_BYTES: usize = 24;

/// A key as presented by a client, split into its id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    id: ApiKeyId,
    secret: String,
}

impl PresentedKey {
    /// Parses `hse_<32 hex id>_<48 hex secret>`.
    ///
    /// # Errors
    /// [`AuthError::InvalidApiKey`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.splitn(3, '_');
        let (Some(PREFIX), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::InvalidApiKey);
        };
        let well_formed = id.len() == 32
            && secret.len() == SECRET_BYTES * 2
            && secret.bytes().all(|b| b.is_ascii_hexdigit());
        let id = Uuid::try_parse(id).map_err(|_| AuthError::InvalidApiKey)?;
        if !well_formed {
            return Err(AuthError::InvalidApiKey);
        }
        Ok(Self {
            id: ApiKeyId(id),
            secret: secret.to_owned(),
        })
    }

    /// The key id.
    #[must_use]
    pub fn id(&self) -> ApiKeyId {
        self.id
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How key secrets are digested: SHA-256, or HMAC-SHA-256 with a pepper
/// kept outside the database.
#[derive(Clone, Default)]
pub struct KeyDigest {
    pepper: Option<Vec<u8>>,
}

impl KeyDigest {
    /// Plain SHA-256 (the secrets carry 192 bits, so a slow hash adds nothing).
    #[must_use]
    pub fn sha256() -> Self {
        Self { pepper: None }
    }

    /// HMAC-SHA-256 keyed with `pepper` (at least 32 bytes), so a stolen
    /// table is useless without the server's configuration.
    ///
    /// # Errors
    /// [`AuthError::Config`] for a pepper shorter than 32 bytes.
    pub fn hmac(pepper: &[u8]) -> Result<Self> {
        if pepper.len() < 32 {
            return Err(AuthError::Config("API key pepper needs 32+ bytes".into()));
        }
        Ok(Self {
            pepper: Some(pepper.to_vec()),
        })
    }

    /// The digest of `secret`.
    #[must_use]
    pub fn digest(&self, secret: &str) -> SecretHash {
        match &self.pepper {
            None => SecretHash(Sha256::digest(secret.as_bytes()).into()),
            Some(pepper) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(pepper) else {
                    // HMAC accepts keys of any length; unreachable.
                    return SecretHash(Sha256::digest(secret.as_bytes()).into());
                };
                mac.update(secret.as_bytes());
                SecretHash(mac.finalize().into_bytes().into())
            }
        }
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.pepper.is_some() {
            "hmac-sha256"
        } else {
            "sha256"
        };
        f.debug_struct("KeyDigest").field("kind", &kind).finish()
    }
}

/// Input to create a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApiKey {
    /// A label, 1–100 characters.
    pub name: String,
    /// What the key may do.
    pub permissions: BTreeSet<ActionName>,
    /// When it stops working by itself, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who is managing keys: a user signed in, or a request made with a key.
///
/// A user manages the keys it created (and, holding `delete_api_key`,
/// revokes keys in its scope). A key manages only the keys minted from it,
/// and only with the permission for each act: `create_api_key`,
/// `read_api_key`, `delete_api_key`.
#[derive(Clone, Copy, Debug)]
pub struct KeyActor<'a> {
    /// The caller's principal (for a key: its creator, narrowed).
    pub principal: &'a Principal,
    /// The key the request was made with, if it was.
    pub key_id: Option<ApiKeyId>,
}

impl<'a> From<&'a Principal> for KeyActor<'a> {
    fn from(principal: &'a Principal) -> Self {
        Self {
            principal,
            key_id: None,
        }
    }
}

impl<'a> From<&'a KeyPrincipal> for KeyActor<'a> {
    fn from(key: &'a KeyPrincipal) -> Self {
        Self {
            principal: &key.principal,
            key_id: Some(key.key_id),
        }
    }
}

/// How far up a key's parents [`ApiKeys::revoke`] looks for the actor.
const MAX_LINEAGE: usize = 64;

/// Creates, verifies and revokes API keys.
#[derive(Clone, Debug)]
pub struct ApiKeys {
    store: Arc<dyn AuthStore>,
    digest: KeyDigest,
    dummy: SecretHash,
}

impl ApiKeys {
    /// Keys kept in `store`, digested with `digest`.
    #[must_use]
    pub fn new(store: Arc<dyn AuthStore>, digest: KeyDigest) -> Self {
        let dummy = digest.digest("hse-dummy-key-secret");
        Self {
            store,
            digest,
            dummy,
        }
    }

    /// Creates a key for the actor's user; returns it and the full key
    /// text, which is shown once and never stored. Made with a key, the
    /// new key is that key's child: its permissions must be among the
    /// parent's and it must expire no later than the parent.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] when the creator may not create keys or
    /// asks for a permission it (or the parent key) does not hold;
    /// [`AuthError::Invalid`] for a bad name, a past expiry, or one later
    /// than the parent key's; [`AuthError::InvalidApiKey`] when the parent
    /// key stopped working meanwhile.
    pub async fn create(
        &self,
        actor: KeyActor<'_>,
        new: NewApiKey,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, SecretString)> {
        let creator = actor.principal;
        check_new(creator, &new, now)?;
        if let Some(parent) = actor.key_id {
            let parent = self.live_key(parent, now).await?;
            check_child(&parent, &new)?;
        }
        let secret = random_hex(SECRET_BYTES)?;
        let key = ApiKey {
            id: ApiKeyId::new(),
            name: new.name.trim().to_owned(),
            created_by: creator.user_id,
            scope: creator.scope(),
            permissions: new.permissions,
            last_four: secret[secret.len() - 4..].to_owned(),
            secret_hash: Some(self.digest.digest(&secret)),
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            parent_id: actor.key_id,
        };
        self.store.insert_api_key(&key).await?;
        let text = format!("{PREFIX}_{}_{secret}", key.id.as_uuid().simple());
        Ok((key, SecretString::new(text)))
    }

    /// The stored record of a key that is live at `now`.
    async fn live_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> Result<ApiKey> {
        self.store
            .api_key(id)
            .await?
            .filter(|k| k.is_live(now))
            .ok_or(AuthError::InvalidApiKey)
    }

    /// Checks a presented key and returns its record.
    ///
    /// # Errors
    /// [`AuthError::InvalidApiKey`], identical for every way of failing.
    pub async fn verify(&self, presented: &str, now: DateTime<Utc>) -> Result<ApiKey> {
        let presented = PresentedKey::parse(presented)?;
        let digest = self.digest.digest(&presented.secret);
        let key = self.store.api_key(presented.id).await?;
        let stored = key
            .as_ref()
            .and_then(|k| k.secret_hash)
            .unwrap_or(self.dummy);
        let same: bool = digest.0.ct_eq(&stored.0).into();
        match key {
            Some(key) if same && key.is_live(now) => Ok(key),
            _ => Err(AuthError::InvalidApiKey),
        }
    }

    /// Revokes a key and every key minted from it. A user may revoke the
    /// keys it created, and holding `delete_api_key` any key its scope
    /// covers; a key holding `delete_api_key` only the keys minted from it.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] for a key without `delete_api_key`;
    /// [`AuthError::NotFound`] when the key does not exist or is outside
    /// the actor's reach (alike, so ids outside it are not revealed).
    pub async fn revoke(
        &self,
        actor: KeyActor<'_>,
        id: ApiKeyId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let not_found = AuthError::NotFound { entity: "api_key" };
        let key = match actor.key_id {
            Some(own) => {
                require(actor.principal, "delete_api_key", "revoke API keys")?;
                self.live_key(own, now).await?;
                self.descendant_of(own, id).await?.ok_or(not_found)?
            }
            None => self
                .store
                .api_key(id)
                .await?
                .filter(|k| may_manage(actor.principal, k))
                .ok_or(not_found)?,
        };
        self.store.revoke_api_key(key.id, now).await?;
        tracing::info!(api_key.id = %key.id, "API key revoked, with the keys minted from it");
        Ok(())
    }

    /// The key `id` if it was minted from `ancestor` (transitively).
    async fn descendant_of(&self, ancestor: ApiKeyId, id: ApiKeyId) -> Result<Option<ApiKey>> {
        let Some(key) = self.store.api_key(id).await? else {
            return Ok(None);
        };
        let mut parent = key.parent_id;
        for _ in 0..MAX_LINEAGE {
            match parent {
                Some(p) if p == ancestor => return Ok(Some(key)),
                Some(p) => parent = self.store.api_key(p).await?.and_then(|k| k.parent_id),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The keys the actor manages (without digests): for a user, the keys
    /// it created; for a key holding `read_api_key`, the keys minted from it.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] for a key without `read_api_key`; a storage
    /// error.
    pub async fn list(&self, actor: KeyActor<'_>, now: DateTime<Utc>) -> Result<Vec<ApiKey>> {
        let mut keys = match actor.key_id {
            Some(own) => {
                require(actor.principal, "read_api_key", "list API keys")?;
                self.live_key(own, now).await?;
                self.store.api_key_descendants(own).await?
            }
            None => {
                self.store
                    .api_keys_created_by(actor.principal.user_id)
                    .await?
            }
        };
        for k in &mut keys {
            k.secret_hash = None;
        }
        Ok(keys)
    }
}

/// [`AuthError::Forbidden`] unless `p` holds `action` (to `what`).
fn require(p: &Principal, action: &str, what: &str) -> Result<()> {
    if ActionName::parse(action).is_ok_and(|a| p.permissions.contains(&a)) {
        return Ok(());
    }
    Err(AuthError::forbidden(format!(
        "this credential may not {what} (it lacks `{action}`)"
    )))
}

/// A key minted by `parent` holds only permissions the parent holds and
/// ends no later than the parent.
fn check_child(parent: &ApiKey, new: &NewApiKey) -> Result<()> {
    if let Some(extra) = new
        .permissions
        .iter()
        .find(|p| !parent.permissions.contains(*p))
    {
        return Err(AuthError::forbidden(format!(
            "a key cannot hold `{extra}`, which the key creating it does not hold"
        )));
    }
    match (parent.expires_at, new.expires_at) {
        (Some(end), None) => Err(AuthError::invalid(
            "expires_at",
            format!(
                "required: the key creating it expires at {}",
                end.to_rfc3339()
            ),
        )),
        (Some(end), Some(asked)) if asked > end => Err(AuthError::invalid(
            "expires_at",
            format!(
                "must be no later than the key creating it, which expires at {}",
                end.to_rfc3339()
            ),
        )),
        _ => Ok(()),
    }
}

fn check_new(creator: &Principal, new: &NewApiKey, now: DateTime<Utc>) -> Result<()> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AuthError::invalid("name", "must have 1 to 100 characters"));
    }
    if new.expires_at.is_some_and(|end| end <= now) {
        return Err(AuthError::invalid("expires_at", "must be in the future"));
    }
    if creator.scope() == Scope::Nothing {
        return Err(AuthError::forbidden("no tenant scope to attach the key to"));
    }
    require(creator, "create_api_key", "create API keys")?;
    let held = held_anywhere(creator);
    match new.permissions.iter().find(|p| !held.contains(*p)) {
        Some(extra) => Err(AuthError::forbidden(format!(
            "a key cannot hold `{extra}`, which you do not hold"
        ))),
        None => Ok(()),
    }
}

fn held_anywhere(p: &Principal) -> BTreeSet<ActionName> {
    let mut held = p.permissions.clone();
    held.extend(p.establishments.values().flatten().cloned());
    held
}

fn may_manage(actor: &Principal, key: &ApiKey) -> bool {
    if actor.user_id == key.created_by {
        return true;
    }
    let may_delete =
        ActionName::parse("delete_api_key").is_ok_and(|a| actor.permissions.contains(&a));
    may_delete && covers(&actor.scope(), &key.scope)
}

fn covers(outer: &Scope, inner: &Scope) -> bool {
    match (outer, inner) {
        (Scope::Platform, _) => true,
        (
            Scope::Partner {
                partner_company_id: a,
            },
            Scope::Partner {
                partner_company_id: b,
            },
        ) => a == b,
        (
            Scope::Organization {
                organization_id: a, ..
            },
            Scope::Organization {
                organization_id: b, ..
            },
        ) => a == b,
        _ => false,
    }
}

/// The principal a request made with `key` acts as: its creator's current
/// principal, with only the permissions both hold.
///
/// # Errors
/// [`AuthError::InvalidApiKey`] when the creator's scope no longer covers
/// the key's (the creator moved tenant).
pub fn narrow(creator: Principal, key: &ApiKey) -> Result<Principal> {
    if !covers(&creator.scope(), &key.scope) {
        return Err(AuthError::InvalidApiKey);
    }
    let permissions = creator
        .permissions
        .intersection(&key.permissions)
        .cloned()
        .collect();
    let establishments: BTreeMap<_, _> = creator
        .establishments
        .into_iter()
        .map(|(e, extra)| (e, extra.intersection(&key.permissions).cloned().collect()))
        .collect();
    Ok(Principal {
        permissions,
        establishments,
        ..creator
    })
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    SysRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| AuthError::Internal(format!("OS random generator: {e}")))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_shape_parses() {
        let id = Uuid::now_v7().simple().to_string();
        let secret = "ab".repeat(SECRET_BYTES);
        assert!(PresentedKey::parse(&format!("hse_{id}_{secret}")).is_ok());
        for bad in [
            format!("hsx_{id}_{secret}"),
            format!("hse_{id}"),
            format!("hse_{id}_{}", &secret[1..]),
            format!("hse_{id}_{}zz", &secret[2..]),
            format!("hse_nothex_{secret}"),
            String::new(),
        ] {
            assert!(PresentedKey::parse(&bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(text in ".{0,120}") {
            let _ = PresentedKey::parse(&text);
        }
    }

    #[test]
    fn a_peppered_digest_differs_from_plain_sha256_and_hides_the_pepper() {
        let plain = KeyDigest::sha256().digest("s");
        let peppered = KeyDigest::hmac(&[1; 32]).unwrap();
        assert_ne!(plain, peppered.digest("s"));
        assert!(KeyDigest::hmac(&[1; 31]).is_err());
        assert!(!format!("{peppered:?}").contains("1, 1"));
    }
}
