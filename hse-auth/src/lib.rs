//! hse-auth: who is calling HSE, and how often they may.
//!
//! Users sign in with an email and an Argon2id-hashed password (and, when
//! enrolled, a TOTP code) and get a short-lived JWT access token plus an
//! opaque refresh token that rotates on every use; a reused refresh token
//! revokes its whole session. Third parties call with scoped API keys whose
//! permissions are a subset of their creator's. Sign-ins and keys are
//! rate-limited with GCRA, shared across processes through Redis. Every
//! credential ends up as an hse-core [`hse_core::Principal`].
//!
//! The bar is OWASP ASVS 5.0 (V6–V11) and RFC 9700.
//!
//! # Layout
//! - [`authenticator`]: the service ([`Authenticator`]) that ties it all together;
//!   [`config`] its adapters and settings, [`session`] what it hands out.
//! - [`password`]: policy and Argon2id hashing behind a concurrency bound.
//! - [`token`]: JWT access tokens (EdDSA default, HS256 selectable).
//! - [`refresh`]: refresh-token families, rotation and reuse detection.
//! - [`api_key`]: `hse_<id>_<secret>` keys, narrowing to the key's permissions.
//! - [`denylist`]: access tokens of ended sessions refused before they expire.
//! - [`rate_limit`], [`throttle`]: GCRA limits and growing sign-in delays.
//! - [`totp`]: the optional second factor and recovery codes.
//! - [`audit`]: batched API-key usage records.
//! - `cache`: bounded caches of verified tokens and principals.
//! - [`cookie`]: `__Host-` cookie headers for browsers.
//! - [`model`], [`error`]: data and the error enum. Time comes from
//!   hse-core's injectable [`Clock`].
//! - [`store`]: the ports; [`memory`], `postgres` (feature `postgres`) and
//!   `redis` (feature `redis`) adapters.
//!
//! # Metrics
//! Emitted through the `metrics` facade (exported by the recorder the
//! binary installs, e.g. hse-server's `/metrics`):
//! `hse_auth_logins_total{outcome}`, `hse_auth_api_key_refusals_total{reason}`,
//! `hse_auth_refresh_reuse_total`, `hse_auth_hashing_busy_total`,
//! `hse_auth_argon2_seconds` (histogram), `hse_auth_audit_dropped_total`.
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use hse_auth::{AuthConfig, AuthDeps, Authenticator, LoginOutcome, SigningKey, TenancyDirectory};
//! use hse_core::{memory::MemoryTenancyStore, model::NewUser, value::Email, Scope, SystemRole, TenancyStore};
//!
//! // Users live in hse-core's tenancy store (here the in-memory one).
//! let tenancy: Arc<dyn TenancyStore> = Arc::new(MemoryTenancyStore::new());
//! let directory = Arc::new(TenancyDirectory::new(tenancy.clone()));
//! let config = AuthConfig::new(SigningKey::generate_ed25519()?, "https://hse.example.com", "hse-api");
//! let auth = Authenticator::build(AuthDeps::in_memory(directory), config)?;
//!
//! let root = NewUser {
//!     email: Email::parse("root@example.com")?,
//!     first_name: "Root".into(),
//!     last_name: String::new(),
//!     role_id: SystemRole::Root.id(),
//!     partner_company_id: None,
//!     organization_id: None,
//! }
//! .build(None, true, chrono::Utc::now())?;
//! let hash = auth.passwords().hash("correct horse battery").await?;
//! tenancy.insert_user(&Scope::Platform, &root, Some(&hash)).await?;
//!
//! let LoginOutcome::SignedIn(session) = auth.login("root@example.com", "correct horse battery").await?
//! else { unreachable!("no second factor enrolled") };
//! let principal = auth.authenticate(session.access.token.expose()).await?;
//! assert_eq!(principal.scope(), Scope::Platform);
//!
//! // An unknown email fails exactly like a wrong password.
//! let err = auth.login("nobody@example.com", "correct horse battery").await.unwrap_err();
//! assert_eq!(err.http_status(), 401);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod api_key;
pub mod audit;
pub mod authenticator;
mod cache;
pub mod config;
pub mod cookie;
pub mod denylist;
pub mod error;
pub mod memory;
pub mod model;
pub mod password;
pub mod rate_limit;
pub mod refresh;
pub mod session;
pub mod store;
pub mod throttle;
pub mod token;
pub mod totp;

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

pub use api_key::{ApiKeys, KeyActor, KeyDigest, NewApiKey};
pub use authenticator::Authenticator;
pub use config::{AuthConfig, AuthDeps};
pub use error::{AuthError, Result};
pub use hse_core::clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryAuthStore;
pub use model::{ApiKey, ApiKeyId, FamilyId, SecretString};
pub use password::{PasswordConfig, Passwords};
pub use rate_limit::{Decision, MemoryRateLimiter, Quota, RateLimiter};
pub use session::{KeyPrincipal, LoginOutcome, Session};
pub use store::{AuthStore, TenancyDirectory, UserDirectory};
pub use throttle::Source;
pub use token::{SigningKey, TokenConfig};
