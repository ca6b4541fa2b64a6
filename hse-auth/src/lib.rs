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
//! - [`rate_limit`], [`throttle`]: GCRA limits and growing sign-in delays.
//! - [`totp`]: the optional second factor and recovery codes.
//! - [`audit`]: batched API-key usage records.
//! - [`cookie`]: `__Host-` cookie headers for browsers.
//! - [`model`], [`error`]: data and the error enum. Time comes from
//!   hse-core's injectable [`Clock`].
//! - [`store`]: the ports; [`memory`], `postgres` (feature `postgres`) and
//!   `redis` (feature `redis`) adapters.
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use hse_auth::{AuthConfig, AuthDeps, Authenticator, LoginOutcome, SigningKey};
//! # use hse_auth::{store::UserDirectory, Result};
//! # use hse_core::{store::Credentials, value::Email, Principal, UserId};
//! # #[derive(Debug)] struct Nobody;
//! # #[async_trait::async_trait] impl UserDirectory for Nobody {
//! #   async fn credentials(&self, _: &Email) -> Result<Option<Credentials>> { Ok(None) }
//! #   async fn credentials_of(&self, _: UserId) -> Result<Option<Credentials>> { Ok(None) }
//! #   async fn set_password_hash(&self, _: UserId, _: &str, _: chrono::DateTime<chrono::Utc>) -> Result<()> { Ok(()) }
//! #   async fn principal(&self, _: UserId) -> Result<Option<Principal>> { Ok(None) }
//! # }
//! # let directory = Arc::new(Nobody);
//! // `directory` is usually `TenancyDirectory::new(tenancy_store)`.
//! let key = SigningKey::generate_ed25519()?;
//! let config = AuthConfig::new(key, "https://hse.example.com", "hse-api");
//! let auth = Authenticator::build(AuthDeps::in_memory(directory), config)?;
//! match auth.login("ana@example.com", "correct horse battery").await {
//!     Ok(LoginOutcome::SignedIn(session)) => println!("{}", session.access.token.expose()),
//!     Ok(LoginOutcome::SecondFactorRequired { .. }) => println!("ask for a TOTP code"),
//!     Err(e) => assert_eq!(e.http_status(), 401), // unknown email: same as a wrong password
//! }
//! # Ok::<(), hse_auth::AuthError>(())
//! # }).unwrap();
//! ```

pub mod api_key;
pub mod audit;
pub mod authenticator;
pub mod config;
pub mod cookie;
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

pub use api_key::{ApiKeys, KeyDigest, NewApiKey};
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
pub use token::{SigningKey, TokenConfig};
