//! Shared test fixtures: a fake user directory, fast configs, services on
//! memory or PostgreSQL, Redis connections.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hse_auth::password::HashParams;
use hse_auth::rate_limit::MemoryRateLimiter;
use hse_auth::throttle::MemoryFailureStore;
use hse_auth::totp::SealingKey;
use hse_auth::{
    AuthConfig, AuthDeps, AuthStore, Authenticator, ManualClock, MemoryAuthStore, PasswordConfig,
    Quota, Result, SigningKey, UserDirectory,
};
use hse_core::store::Credentials;
use hse_core::value::Email;
use hse_core::{OrganizationId, Principal, SystemRole, User, UserId};
use sqlx::PgPool;

/// The seed of the test signing key.
pub(crate) const SEED: [u8; 32] = [7; 32];
pub(crate) const ISSUER: &str = "https://hse.test";
pub(crate) const AUDIENCE: &str = "hse-api";

/// Argon2 parameters low enough for tests (never the defaults).
pub(crate) fn fast_passwords() -> PasswordConfig {
    PasswordConfig {
        params: HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..PasswordConfig::default()
    }
}

pub(crate) fn config() -> AuthConfig {
    let mut config = AuthConfig::new(SigningKey::ed25519_from_seed(&SEED), ISSUER, AUDIENCE);
    config.passwords = fast_passwords();
    config.totp_key = Some(SealingKey::new([5; 32]));
    config
}

pub(crate) fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
        .expect("date")
        .with_timezone(&Utc)
}

#[derive(Debug, Clone)]
struct Entry {
    user: User,
    hash: Option<String>,
    principal: Principal,
}

/// Users in a map: enough of hse-core's tenancy store for sign-in.
#[derive(Debug, Default)]
pub(crate) struct FakeDirectory {
    users: Mutex<HashMap<UserId, Entry>>,
}

impl FakeDirectory {
    pub(crate) fn add(&self, email: &str, hash: Option<String>) -> Principal {
        let org = OrganizationId::new();
        let now = start();
        let user = User {
            id: UserId::new(),
            email: Email::parse(email).expect("email"),
            first_name: "Test".into(),
            last_name: String::new(),
            role_id: SystemRole::Admin.id(),
            partner_company_id: None,
            organization_id: Some(org),
            is_active: true,
            email_verified: true,
            created_at: now,
            updated_at: now,
        };
        let principal = Principal {
            user_id: user.id,
            role_id: user.role_id,
            hierarchy: SystemRole::Admin.hierarchy(),
            partner_company_id: None,
            organization_id: Some(org),
            permissions: SystemRole::Admin.default_permissions(),
            establishments: BTreeMap::new(),
        };
        let entry = Entry {
            user,
            hash,
            principal: principal.clone(),
        };
        self.users.lock().unwrap().insert(principal.user_id, entry);
        principal
    }

    pub(crate) fn deactivate(&self, id: UserId) {
        if let Some(e) = self.users.lock().unwrap().get_mut(&id) {
            e.user.is_active = false;
        }
    }

    pub(crate) fn remove(&self, id: UserId) {
        self.users.lock().unwrap().remove(&id);
    }

    pub(crate) fn hash_of(&self, id: UserId) -> Option<String> {
        self.users
            .lock()
            .unwrap()
            .get(&id)
            .and_then(|e| e.hash.clone())
    }

    pub(crate) fn set_hash(&self, id: UserId, hash: &str) {
        if let Some(e) = self.users.lock().unwrap().get_mut(&id) {
            e.hash = Some(hash.to_owned());
        }
    }

    pub(crate) fn move_to_other_organization(&self, id: UserId) {
        if let Some(e) = self.users.lock().unwrap().get_mut(&id) {
            e.principal.organization_id = Some(OrganizationId::new());
        }
    }
}

#[async_trait]
impl UserDirectory for FakeDirectory {
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>> {
        let users = self.users.lock().unwrap();
        Ok(users
            .values()
            .find(|e| &e.user.email == email)
            .map(|e| Credentials {
                user: e.user.clone(),
                password_hash: e.hash.clone(),
            }))
    }

    async fn credentials_of(&self, id: UserId) -> Result<Option<Credentials>> {
        let users = self.users.lock().unwrap();
        Ok(users.get(&id).map(|e| Credentials {
            user: e.user.clone(),
            password_hash: e.hash.clone(),
        }))
    }

    async fn set_password_hash(&self, id: UserId, hash: &str, _now: DateTime<Utc>) -> Result<()> {
        self.set_hash(id, hash);
        Ok(())
    }

    async fn principal(&self, id: UserId) -> Result<Option<Principal>> {
        let users = self.users.lock().unwrap();
        Ok(users
            .get(&id)
            .filter(|e| e.user.is_active)
            .map(|e| e.principal.clone()))
    }
}

/// A service on a fake directory, a manual clock, and `store`.
pub(crate) struct Harness {
    pub(crate) auth: Authenticator,
    pub(crate) dir: Arc<FakeDirectory>,
    pub(crate) store: Arc<dyn AuthStore>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) pool: Option<PgPool>,
}

impl Harness {
    pub(crate) fn memory() -> Self {
        Self::build(Arc::new(MemoryAuthStore::new()), None, config())
    }

    pub(crate) async fn postgres(pool: PgPool) -> Self {
        migrate(&pool).await;
        // The store connects as the application role, so row-level
        // security is exercised; `pool` (the owner) inserts the test users.
        let app = hse_core::postgres::app_pool(&pool, 8)
            .await
            .expect("the application role connects");
        let store = Arc::new(hse_auth::postgres::PgAuthStore::new(app));
        Self::build(store, Some(pool), config())
    }

    pub(crate) fn build(
        store: Arc<dyn AuthStore>,
        pool: Option<PgPool>,
        config: AuthConfig,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(start()));
        let dir = Arc::new(FakeDirectory::default());
        let deps = AuthDeps {
            directory: dir.clone(),
            store: store.clone(),
            limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
            failures: Arc::new(MemoryFailureStore::new()),
            clock: clock.clone(),
        };
        let auth = Authenticator::build(deps, config).expect("authenticator");
        Self {
            auth,
            dir,
            store,
            clock,
            pool,
        }
    }

    /// Adds a user with `password`; in PostgreSQL too (for foreign keys).
    pub(crate) async fn user(&self, email: &str, password: &str) -> Principal {
        let hash = self.auth.passwords().hash(password).await.expect("hash");
        let principal = self.dir.add(email, Some(hash));
        if let Some(pool) = &self.pool {
            insert_pg_user(pool, principal.user_id, email).await;
        }
        principal
    }
}

pub(crate) async fn migrate(pool: &PgPool) {
    hse_core::postgres::migrate(pool)
        .await
        .expect("core migrations");
    hse_auth::postgres::migrate(pool)
        .await
        .expect("auth migrations");
}

/// A root user row, so auth tables' foreign keys hold.
pub(crate) async fn insert_pg_user(pool: &PgPool, id: UserId, email: &str) {
    sqlx::query(
        "INSERT INTO users (id, email, first_name, role_id, created_at, updated_at)
         VALUES ($1, $2, 'Test', $3, now(), now())",
    )
    .bind(id.as_uuid())
    .bind(email.to_lowercase())
    .bind(SystemRole::Root.id().as_uuid())
    .execute(pool)
    .await
    .expect("insert user");
}

pub(crate) async fn pg_users(pool: &PgPool, n: usize) -> Vec<UserId> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = UserId::new();
        insert_pg_user(pool, id, &format!("user{i}-{id}@example.com")).await;
        ids.push(id);
    }
    ids
}

pub(crate) fn quota(burst: u32, interval_ms: u64) -> Quota {
    Quota::new(
        std::num::NonZeroU32::new(burst).expect("burst"),
        StdDuration::from_millis(interval_ms),
    )
}

pub(crate) async fn redis() -> redis::aio::ConnectionManager {
    let url = std::env::var("HSE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).expect("redis url");
    redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis connection")
}

pub(crate) fn random_prefix() -> String {
    format!("hse-auth-test:{}:", uuid::Uuid::new_v4().simple())
}

/// Runs each named `async fn case(h: Harness)` of the calling module on
/// the memory harness (`memory::case`) and on PostgreSQL (`postgres::case`,
/// a fresh database each).
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(crate::support::Harness::memory()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[sqlx::test(migrations = false)]
                async fn $case(pool: sqlx::PgPool) {
                    super::$case(crate::support::Harness::postgres(pool).await).await;
                }
            )*
        }
    };
}
pub(crate) use on_both;
