//! In-memory [`AuthStore`]: the embedded default and a test double.
//!
//! One mutex guards all state, so every method is atomic exactly like the
//! PostgreSQL adapter's transactions. Nothing survives a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::{SecretHash, UserId};

use crate::error::{AuthError, Result};
use crate::model::{
    ApiKey, ApiKeyId, FamilyId, KeyUsage, Purged, RefreshFamily, RevokeReason, Rotation,
    TotpEnrollment,
};
use crate::store::AuthStore;

#[derive(Debug)]
struct Family {
    record: RefreshFamily,
    revoked: Option<(DateTime<Utc>, RevokeReason)>,
}

#[derive(Debug)]
struct Token {
    family_id: FamilyId,
    spent_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct RecoveryCode {
    hash: SecretHash,
    used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct State {
    families: HashMap<FamilyId, Family>,
    tokens: HashMap<SecretHash, Token>,
    keys: Vec<ApiKey>,
    usage: Vec<KeyUsage>,
    totp: HashMap<UserId, TotpEnrollment>,
    recovery: HashMap<UserId, Vec<RecoveryCode>>,
}

/// The in-memory auth store.
#[derive(Debug, Default)]
pub struct MemoryAuthStore {
    state: Mutex<State>,
}

impl MemoryAuthStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The ids of the keys minted from `id`, transitively.
    fn descendants(&self, id: ApiKeyId) -> HashSet<ApiKeyId> {
        let mut found = HashSet::new();
        let mut frontier = vec![id];
        while let Some(parent) = frontier.pop() {
            for k in self.keys.iter().filter(|k| k.parent_id == Some(parent)) {
                if found.insert(k.id) {
                    frontier.push(k.id);
                }
            }
        }
        found
    }

    fn revoke(&mut self, id: FamilyId, reason: RevokeReason, now: DateTime<Utc>) -> bool {
        match self.families.get_mut(&id) {
            Some(f) if f.revoked.is_none() => {
                f.revoked = Some((now, reason));
                true
            }
            _ => false,
        }
    }

    fn rotate(
        &mut self,
        presented: SecretHash,
        next: SecretHash,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Rotation {
        let Some(token) = self.tokens.get(&presented) else {
            return Rotation::Invalid;
        };
        let (family_id, spent_at) = (token.family_id, token.spent_at);
        let Some(family) = self.families.get(&family_id) else {
            return Rotation::Invalid;
        };
        if family.revoked.is_some() || now >= family.record.expires_at {
            return Rotation::Invalid;
        }
        let (user_id, expires_at) = (family.record.user_id, family.record.expires_at);
        match spent_at {
            Some(at) if now - at < grace => return Rotation::Raced { family_id },
            Some(_) => {
                self.revoke(family_id, RevokeReason::Reuse, now);
                return Rotation::Reused { family_id, user_id };
            }
            None => {}
        }
        if let Some(t) = self.tokens.get_mut(&presented) {
            t.spent_at = Some(now);
        }
        self.tokens.insert(
            next,
            Token {
                family_id,
                spent_at: None,
            },
        );
        Rotation::Rotated {
            family_id,
            user_id,
            expires_at,
        }
    }
}

#[async_trait]
impl AuthStore for MemoryAuthStore {
    async fn create_family(&self, family: &RefreshFamily, first: SecretHash) -> Result<()> {
        let mut s = self.lock();
        s.families.insert(
            family.id,
            Family {
                record: family.clone(),
                revoked: None,
            },
        );
        s.tokens.insert(
            first,
            Token {
                family_id: family.id,
                spent_at: None,
            },
        );
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        presented: SecretHash,
        next: SecretHash,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Rotation> {
        Ok(self.lock().rotate(presented, next, now, grace))
    }

    async fn revoke_family_of(
        &self,
        token: SecretHash,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<Option<FamilyId>> {
        let mut s = self.lock();
        let Some(family_id) = s.tokens.get(&token).map(|t| t.family_id) else {
            return Ok(None);
        };
        s.revoke(family_id, reason, now);
        Ok(Some(family_id))
    }

    async fn revoke_user_families(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut s = self.lock();
        let ids: Vec<FamilyId> = s
            .families
            .values()
            .filter(|f| f.record.user_id == user && f.revoked.is_none())
            .map(|f| f.record.id)
            .collect();
        for id in &ids {
            s.revoke(*id, reason, now);
        }
        Ok(ids.len() as u64)
    }

    async fn family_revoked(&self, id: FamilyId) -> Result<bool> {
        Ok(self
            .lock()
            .families
            .get(&id)
            .is_none_or(|f| f.revoked.is_some()))
    }

    async fn purge(&self, now: DateTime<Utc>, usage_before: DateTime<Utc>) -> Result<Purged> {
        let mut s = self.lock();
        let before = (s.families.len(), s.usage.len());
        s.families.retain(|_, f| f.record.expires_at >= now);
        let State {
            families, tokens, ..
        } = &mut *s;
        tokens.retain(|_, t| families.contains_key(&t.family_id));
        s.usage.retain(|u| u.at >= usage_before);
        Ok(Purged {
            families: (before.0 - s.families.len()) as u64,
            usage: (before.1 - s.usage.len()) as u64,
        })
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let mut s = self.lock();
        if key.secret_hash.is_none() {
            return Err(AuthError::invalid(
                "secret_hash",
                "an API key needs its hash",
            ));
        }
        if s.keys.iter().any(|k| k.id == key.id) {
            return Err(AuthError::invalid("id", "API key id already exists"));
        }
        if let Some(parent) = key.parent_id {
            let live = s
                .keys
                .iter()
                .any(|k| k.id == parent && k.is_live(key.created_at));
            if !live {
                return Err(AuthError::InvalidApiKey);
            }
        }
        s.keys.push(key.clone());
        Ok(())
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        Ok(self.lock().keys.iter().find(|k| k.id == id).cloned())
    }

    async fn api_keys_created_by(&self, user: UserId) -> Result<Vec<ApiKey>> {
        let mut keys: Vec<ApiKey> = self
            .lock()
            .keys
            .iter()
            .filter(|k| k.created_by == user)
            .cloned()
            .collect();
        keys.sort_by_key(|k| k.id);
        Ok(keys)
    }

    async fn api_key_descendants(&self, id: ApiKeyId) -> Result<Vec<ApiKey>> {
        let s = self.lock();
        let mut keys: Vec<ApiKey> = s
            .descendants(id)
            .into_iter()
            .filter_map(|d| s.keys.iter().find(|k| k.id == d).cloned())
            .collect();
        keys.sort_by_key(|k| k.id);
        Ok(keys)
    }

    async fn revoke_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> Result<bool> {
        let mut s = self.lock();
        let Some(root) = s.keys.iter_mut().find(|k| k.id == id) else {
            return Ok(false);
        };
        let newly = root.revoked_at.is_none();
        root.revoked_at.get_or_insert(now);
        let descendants = s.descendants(id);
        for k in s.keys.iter_mut().filter(|k| descendants.contains(&k.id)) {
            k.revoked_at.get_or_insert(now);
        }
        Ok(newly)
    }

    async fn insert_usage(&self, batch: &[KeyUsage]) -> Result<()> {
        self.lock().usage.extend_from_slice(batch);
        Ok(())
    }

    async fn key_usage(&self, id: ApiKeyId, limit: u32) -> Result<Vec<KeyUsage>> {
        let s = self.lock();
        let mut uses: Vec<KeyUsage> = s.usage.iter().filter(|u| u.key_id == id).cloned().collect();
        uses.sort_by_key(|u| std::cmp::Reverse(u.at));
        uses.truncate(limit as usize);
        Ok(uses)
    }

    async fn put_totp(&self, enrollment: &TotpEnrollment) -> Result<bool> {
        let mut s = self.lock();
        if s.totp
            .get(&enrollment.user_id)
            .is_some_and(|e| e.confirmed_at.is_some())
        {
            return Ok(false);
        }
        s.totp.insert(enrollment.user_id, enrollment.clone());
        Ok(true)
    }

    async fn totp(&self, user: UserId) -> Result<Option<TotpEnrollment>> {
        Ok(self.lock().totp.get(&user).cloned())
    }

    async fn use_totp_step(&self, user: UserId, step: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut s = self.lock();
        let Some(e) = s.totp.get_mut(&user) else {
            return Ok(false);
        };
        if e.last_step.is_some_and(|last| step <= last) {
            return Ok(false);
        }
        e.last_step = Some(step);
        e.confirmed_at.get_or_insert(now);
        Ok(true)
    }

    async fn delete_totp(&self, user: UserId) -> Result<()> {
        let mut s = self.lock();
        s.totp.remove(&user);
        s.recovery.remove(&user);
        Ok(())
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[SecretHash],
        _now: DateTime<Utc>,
    ) -> Result<()> {
        let codes = codes
            .iter()
            .map(|&hash| RecoveryCode {
                hash,
                used_at: None,
            })
            .collect();
        self.lock().recovery.insert(user, codes);
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: SecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut s = self.lock();
        let slot = s.recovery.get_mut(&user).and_then(|codes| {
            codes
                .iter_mut()
                .find(|c| c.hash == code && c.used_at.is_none())
        });
        Ok(slot.map(|c| c.used_at = Some(now)).is_some())
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32> {
        let s = self.lock();
        let left = s.recovery.get(&user).map_or(0, |codes| {
            codes.iter().filter(|c| c.used_at.is_none()).count()
        });
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }
}
