//! The sign-in service: ties passwords, tokens, refresh families, API keys,
//! rate limits, the throttle and TOTP together, and turns every credential
//! into an hse-core [`Principal`].

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hse_core::cache::Revision;
use hse_core::store::Credentials;
use hse_core::value::Email;
use hse_core::{Principal, UserId};

use crate::api_key::{self, ApiKeys, KeyActor, NewApiKey};
use crate::audit::UsageRecorder;
use crate::cache::PrincipalCache;
use crate::config::{AuthConfig, AuthDeps};
use crate::denylist::{Denylist, MemoryDenylist, Revocations};
use crate::error::{AuthError, Result};
use crate::model::{ApiKey, ApiKeyId, KeyUsage, Purged, RevokeReason, SecretString};
use crate::password::{Passwords, Verification};
use crate::refresh::RefreshTokens;
use crate::session::{KeyPrincipal, LoginOutcome, Session};
use crate::throttle::{AttemptKeys, LoginThrottle, SignInThrottle, Source};
use crate::token::{AccessTokens, TokenKind, scope_ref};
use crate::totp::{Totp, TotpSetup};

/// The sign-in service.
#[derive(Clone, Debug)]
pub struct Authenticator {
    deps: AuthDeps,
    passwords: Passwords,
    tokens: AccessTokens,
    refresh: RefreshTokens,
    keys: ApiKeys,
    throttle: LoginThrottle,
    sign_in: SignInThrottle,
    totp: Option<Totp>,
    usage: Option<UsageRecorder>,
    principals: Arc<PrincipalCache>,
    config: AuthConfig,
}

impl Authenticator {
    /// Builds the service.
    ///
    /// # Errors
    /// [`AuthError::Config`] for invalid token or hashing settings.
    pub fn build(deps: AuthDeps, config: AuthConfig) -> Result<Self> {
        let tokens = AccessTokens::build(config.signing_key.clone(), config.tokens.clone())?
            .with_previous_keys(config.previous_keys.clone())?;
        let totp = config
            .totp_key
            .clone()
            .map(|key| Totp::new(deps.store.clone(), key, config.totp_issuer.clone()));
        Ok(Self {
            passwords: Passwords::build(config.passwords)?,
            refresh: RefreshTokens::new(deps.store.clone(), config.refresh_ttl)
                .with_reuse_grace(config.refresh_reuse_grace)
                .with_revocations(
                    Revocations::new(Arc::new(MemoryDenylist::new())),
                    access_window(&config),
                ),
            keys: ApiKeys::new(deps.store.clone(), config.key_digest.clone()),
            throttle: LoginThrottle::new(deps.failures.clone(), config.throttle),
            sign_in: SignInThrottle::new(deps.failures.clone(), config.sign_in_throttle),
            tokens,
            totp,
            usage: None,
            principals: Arc::new(PrincipalCache::new(config.principal_ttl, Revision::new())),
            deps,
            config,
        })
    }

    /// Keeps revoked sessions in `list` (e.g. `crate::redis::RedisDenylist`,
    /// shared by every node) instead of this process's memory; set it
    /// before serving, as revocations already recorded stay behind.
    #[must_use]
    pub fn with_denylist(mut self, list: Arc<dyn Denylist>) -> Self {
        self.refresh = self
            .refresh
            .with_revocations(Revocations::new(list), access_window(&self.config));
        self
    }

    /// Records API-key usage through `recorder` from now on.
    #[must_use]
    pub fn with_usage_audit(mut self, recorder: UsageRecorder) -> Self {
        self.usage = Some(recorder);
        self
    }

    /// The password hasher (also hse-core's `PasswordHasher` for invitations).
    #[must_use]
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// The public token keys as a JWK Set (empty for HS256).
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        self.tokens.jwks()
    }

    /// TOTP enrollment, when configured.
    #[must_use]
    pub fn totp(&self) -> Option<&Totp> {
        self.totp.as_ref()
    }

    /// Signs in with email and password, from an unknown source: attempts
    /// are counted per account. Servers call [`Authenticator::login_from`].
    ///
    /// # Errors
    /// See [`Authenticator::login_from`].
    pub async fn login(&self, email: &str, password: &str) -> Result<LoginOutcome> {
        self.login_from(email, password, Source::unknown()).await
    }

    /// Signs in with email and password from `source` (the client's
    /// address), throttled by source and account (see [`crate::throttle`]):
    /// failures against an account slow that source down, not the owner
    /// signing in from elsewhere.
    ///
    /// Unknown accounts take the same path and time as wrong passwords.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`], [`AuthError::RateLimited`] (per
    /// source quota or growing delay), [`AuthError::Busy`].
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        source: Source,
    ) -> Result<LoginOutcome> {
        let outcome = self.try_login(email, password, source).await;
        let label = match &outcome {
            Ok(LoginOutcome::SignedIn(_)) => "signed_in",
            Ok(LoginOutcome::SecondFactorRequired { .. }) => "second_factor",
            Err(e) => e.code(),
        };
        metrics::counter!("hse_auth_logins_total", "outcome" => label).increment(1);
        outcome
    }

    async fn try_login(&self, email: &str, password: &str, source: Source) -> Result<LoginOutcome> {
        let now = self.deps.clock.now();
        let keys = AttemptKeys::new(email, source);
        self.deps
            .limiter
            .check(keys.rate_key(), self.config.login_quota)
            .await?
            .into_result()?;
        self.sign_in.check(&keys, now).await?;
        let Some(creds) = self.check_password(email, password).await? else {
            self.sign_in.failed(&keys, now).await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.sign_in.succeeded(&keys).await?;
        let principal = self
            .deps
            .directory
            .principal(creds.user.id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        self.after_password(principal, now).await
    }

    /// Finishes a sign-in with a TOTP or recovery code.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for a bad challenge,
    /// [`AuthError::InvalidSecondFactor`] for a wrong code,
    /// [`AuthError::RateLimited`] when guessing too fast.
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn complete_second_factor(&self, challenge: &str, code: &str) -> Result<Session> {
        let now = self.deps.clock.now();
        let claims = self
            .tokens
            .verify(challenge, TokenKind::SecondFactor, now)?;
        self.check_second_factor(claims.sub, code, now).await?;
        let principal = self.active_principal(claims.sub).await?;
        self.start_session(principal, now).await
    }

    /// Starts TOTP enrollment for the signed-in user; the setup (secret and
    /// `otpauth://` URI) is shown once.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] when TOTP is not configured or already enabled.
    #[tracing::instrument(skip_all, fields(user.id = %who.user_id))]
    pub async fn enroll_totp(&self, who: &Principal, account: &str) -> Result<TotpSetup> {
        let now = self.deps.clock.now();
        self.totp_service()?.enroll(who.user_id, account, now).await
    }

    /// Confirms enrollment with a first code; returns the recovery codes,
    /// shown once. Throttled like sign-in.
    ///
    /// # Errors
    /// [`AuthError::InvalidSecondFactor`], [`AuthError::RateLimited`].
    #[tracing::instrument(skip_all, fields(user.id = %who.user_id), err(level = "info"))]
    pub async fn confirm_totp(&self, who: &Principal, code: &str) -> Result<Vec<SecretString>> {
        let (now, totp) = (self.deps.clock.now(), self.totp_service()?);
        let key = format!("2fa:{}", who.user_id);
        self.throttle.check(&key, now).await?;
        match totp.confirm(who.user_id, code, now).await {
            Ok(codes) => {
                self.throttle.succeeded(&key).await?;
                Ok(codes)
            }
            Err(e) => {
                self.throttle.failed(&key, now).await?;
                Err(e)
            }
        }
    }

    /// Turns the second factor off, after proving it with a current TOTP or
    /// recovery code.
    ///
    /// # Errors
    /// [`AuthError::InvalidSecondFactor`], [`AuthError::RateLimited`].
    #[tracing::instrument(skip_all, fields(user.id = %who.user_id), err(level = "info"))]
    pub async fn disable_totp(&self, who: &Principal, code: &str) -> Result<()> {
        let now = self.deps.clock.now();
        self.check_second_factor(who.user_id, code, now).await?;
        self.totp_service()?.disable(who.user_id).await
    }

    /// Exchanges a refresh token for a new session (and spends it).
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`], or [`AuthError::RefreshReuse`] for a
    /// spent token (the whole session is revoked).
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let now = self.deps.clock.now();
        let (user, refresh) = self.refresh.rotate(refresh_token, now).await?;
        let principal = match self.active_principal(user).await {
            Ok(principal) => principal,
            Err(AuthError::InvalidToken) => {
                // Gone or deactivated: end every session it still has.
                self.refresh
                    .revoke_user(user, RevokeReason::Deactivated, now)
                    .await?;
                return Err(AuthError::InvalidToken);
            }
            Err(e) => return Err(e),
        };
        let access = self
            .tokens
            .issue_in_session(&principal, refresh.family_id, now)?;
        Ok(Session {
            access,
            refresh,
            principal,
        })
    }

    /// Signs out: revokes the session of `refresh_token` and the access
    /// tokens issued in it. Always succeeds for unknown tokens.
    ///
    /// # Errors
    /// A storage error.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        let now = self.deps.clock.now();
        self.refresh.revoke(refresh_token, now).await.map(|_| ())
    }

    /// The principal of a request bearing `access_token`.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for any bad token, or one whose user is
    /// gone, inactive, or moved to another tenant.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal> {
        let now = self.deps.clock.now();
        let claims = self.tokens.verify(access_token, TokenKind::Access, now)?;
        // Also for claims from the verified-token cache: an ended session
        // ends its tokens at once.
        if self.refresh.revocations().is_revoked(&claims, now).await? {
            tracing::debug!("access token of an ended session refused");
            return Err(AuthError::InvalidToken);
        }
        let principal = self.active_principal(claims.sub).await?;
        if scope_ref(&principal.scope()) != claims.scope {
            return Err(AuthError::InvalidToken);
        }
        Ok(principal)
    }

    /// Changes the signed-in user's own password after checking the
    /// current one, and ends every session of the user.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`] for a wrong current password,
    /// [`AuthError::WeakPassword`] for a refused new one,
    /// [`AuthError::RateLimited`] after repeated wrong attempts.
    #[tracing::instrument(skip_all, fields(user.id = %who.user_id), err(level = "info"))]
    pub async fn change_password(&self, who: &Principal, current: &str, new: &str) -> Result<()> {
        let now = self.deps.clock.now();
        let key = format!("password:{}", who.user_id);
        self.throttle.check(&key, now).await?;
        let creds = self.deps.directory.credentials_of(who.user_id).await?;
        if self.verify_credentials(creds, current).await?.is_none() {
            self.throttle.failed(&key, now).await?;
            return Err(AuthError::InvalidCredentials);
        }
        self.throttle.succeeded(&key).await?;
        self.set_password(who.user_id, new).await
    }

    /// Sets a user's password (e.g. an administrator's reset) and ends every
    /// session of the user.
    ///
    /// # Errors
    /// [`AuthError::WeakPassword`] for a refused password.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn set_password(&self, user: UserId, new: &str) -> Result<()> {
        let hash = self.passwords.hash(new).await?;
        let now = self.deps.clock.now();
        self.deps
            .directory
            .set_password_hash(user, &hash, now)
            .await?;
        self.refresh
            .revoke_user(user, RevokeReason::PasswordChange, now)
            .await?;
        Ok(())
    }

    /// Ends every session of `user`; call it when deactivating the user.
    ///
    /// # Errors
    /// A storage error.
    #[tracing::instrument(skip_all, fields(user.id = %user))]
    pub async fn revoke_sessions(&self, user: UserId) -> Result<u64> {
        let now = self.deps.clock.now();
        self.refresh
            .revoke_user(user, RevokeReason::Deactivated, now)
            .await
    }

    /// Deletes expired sessions and usage records older than
    /// `usage_retention`; run it periodically.
    ///
    /// # Errors
    /// A storage error.
    #[tracing::instrument(skip_all)]
    pub async fn purge(&self, usage_retention: Duration) -> Result<Purged> {
        let now = self.deps.clock.now();
        let purged = self.deps.store.purge(now, now - usage_retention).await?;
        tracing::info!(
            purged.families = purged.families,
            purged.usage = purged.usage,
            "auth purge"
        );
        Ok(purged)
    }

    /// Creates an API key for a user signed in (`&Principal`) or as a child
    /// of the key a request was made with (`&KeyPrincipal`); the text is
    /// shown once.
    ///
    /// # Errors
    /// See [`ApiKeys::create`].
    #[tracing::instrument(skip_all, fields(user.id = tracing::field::Empty), err(level = "info"))]
    pub async fn create_api_key<'a>(
        &self,
        actor: impl Into<KeyActor<'a>>,
        new: NewApiKey,
    ) -> Result<(ApiKey, SecretString)> {
        let actor = actor.into();
        tracing::Span::current()
            .record("user.id", tracing::field::display(actor.principal.user_id));
        self.keys.create(actor, new, self.deps.clock.now()).await
    }

    /// Revokes an API key and the keys minted from it.
    ///
    /// # Errors
    /// See [`ApiKeys::revoke`].
    #[tracing::instrument(skip_all, fields(api_key.id = %id))]
    pub async fn revoke_api_key<'a>(
        &self,
        actor: impl Into<KeyActor<'a>>,
        id: ApiKeyId,
    ) -> Result<()> {
        self.keys
            .revoke(actor.into(), id, self.deps.clock.now())
            .await
    }

    /// The keys the actor manages: a user's own, or a key's descendants.
    ///
    /// # Errors
    /// See [`ApiKeys::list`].
    pub async fn list_api_keys<'a>(&self, actor: impl Into<KeyActor<'a>>) -> Result<Vec<ApiKey>> {
        self.keys.list(actor.into(), self.deps.clock.now()).await
    }

    /// The principal of a request bearing an API key, rate-limited per key.
    ///
    /// # Errors
    /// [`AuthError::InvalidApiKey`] or [`AuthError::RateLimited`].
    #[tracing::instrument(skip_all, err(level = "info"))]
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<KeyPrincipal> {
        let now = self.deps.clock.now();
        let key = self.keys.verify(presented, now).await.inspect_err(|e| {
            metrics::counter!("hse_auth_api_key_refusals_total", "reason" => e.code()).increment(1);
        })?;
        let limited = self
            .deps
            .limiter
            .check(&format!("key:{}", key.id), self.config.api_key_quota)
            .await?
            .into_result();
        if limited.is_err() {
            metrics::counter!("hse_auth_api_key_refusals_total", "reason" => "rate_limited")
                .increment(1);
        }
        limited?;
        let creator = self
            .deps
            .directory
            .principal(key.created_by)
            .await?
            .ok_or(AuthError::InvalidApiKey)?;
        Ok(KeyPrincipal {
            principal: api_key::narrow(creator, &key)?,
            key_id: key.id,
        })
    }

    /// Queues an audit record of one API-key request (no-op without audit).
    pub fn record_key_use(&self, key_id: ApiKeyId, route: &str, status: u16) {
        if let Some(usage) = &self.usage {
            usage.record(KeyUsage {
                key_id,
                route: route.to_owned(),
                status,
                at: self.deps.clock.now(),
            });
        }
    }

    async fn check_password(&self, email: &str, password: &str) -> Result<Option<Credentials>> {
        let creds = match Email::parse(email) {
            Ok(email) => self.deps.directory.credentials(&email).await?,
            Err(_) => None,
        };
        self.verify_credentials(creds, password).await
    }

    /// Verifies `password` against an active user's hash, or against the
    /// dummy hash when there is none, so both paths cost one Argon2 run.
    async fn verify_credentials(
        &self,
        creds: Option<Credentials>,
        password: &str,
    ) -> Result<Option<Credentials>> {
        let usable = creds.filter(|c| c.user.is_active && c.password_hash.is_some());
        let Some((creds, hash)) = usable.and_then(|c| c.password_hash.clone().map(|h| (c, h)))
        else {
            self.passwords.verify_dummy(password).await?;
            return Ok(None);
        };
        match self.passwords.verify(password, &hash).await? {
            Verification::Invalid => Ok(None),
            Verification::Valid { needs_rehash } => {
                if needs_rehash {
                    self.rehash(creds.user.id, password).await;
                }
                Ok(Some(creds))
            }
        }
    }

    async fn rehash(&self, user: UserId, password: &str) {
        let now = self.deps.clock.now();
        let result = match self.passwords.hash_without_policy(password).await {
            Ok(hash) => {
                self.deps
                    .directory
                    .set_password_hash(user, &hash, now)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tracing::info!(user.id = %user, "password rehashed to current parameters"),
            Err(e) => tracing::warn!(user.id = %user, error = %e, "password rehash failed"),
        }
    }

    async fn after_password(
        &self,
        principal: Principal,
        now: DateTime<Utc>,
    ) -> Result<LoginOutcome> {
        let needs_second = match &self.totp {
            Some(totp) => totp.is_enabled(principal.user_id).await?,
            None => false,
        };
        if !needs_second {
            return self
                .start_session(principal, now)
                .await
                .map(LoginOutcome::SignedIn);
        }
        let challenge = self.tokens.sign(
            principal.user_id,
            scope_ref(&principal.scope()),
            TokenKind::SecondFactor,
            self.config.second_factor_ttl,
            now,
        )?;
        Ok(LoginOutcome::SecondFactorRequired { challenge })
    }

    fn totp_service(&self) -> Result<&Totp> {
        self.totp
            .as_ref()
            .ok_or_else(|| AuthError::invalid("totp", "second factor is not configured"))
    }

    /// Checks a TOTP or recovery code under the per-user throttle.
    async fn check_second_factor(
        &self,
        user: UserId,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let totp = self.totp.as_ref().ok_or(AuthError::InvalidSecondFactor)?;
        let key = format!("2fa:{user}");
        self.throttle.check(&key, now).await?;
        if let Err(e) = totp.verify(user, code, now).await {
            self.throttle.failed(&key, now).await?;
            return Err(e);
        }
        self.throttle.succeeded(&key).await
    }

    async fn start_session(&self, principal: Principal, now: DateTime<Utc>) -> Result<Session> {
        let refresh = self.refresh.start(principal.user_id, now).await?;
        let access = self
            .tokens
            .issue_in_session(&principal, refresh.family_id, now)?;
        Ok(Session {
            access,
            refresh,
            principal,
        })
    }

    async fn active_principal(&self, user: UserId) -> Result<Principal> {
        let now = self.deps.clock.now();
        if let Some(principal) = self.principals.get(user, now) {
            return Ok(principal);
        }
        let revision = self.principals.revision();
        let principal = self
            .deps
            .directory
            .principal(user)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.principals.insert(principal.clone(), now, revision);
        Ok(principal)
    }

    /// Retires cached principals whenever `revision` moves: pass the
    /// [`Tenancy::revision`](hse_core::Tenancy::revision) of the service
    /// this process changes users, roles, grants, assignments and tenants
    /// through, and those changes apply to the very next request.
    #[must_use]
    pub fn with_tenancy_revision(mut self, revision: Revision) -> Self {
        self.principals = Arc::new(PrincipalCache::new(self.config.principal_ttl, revision));
        self
    }

    /// Forgets every cached principal, so the next request of each user
    /// reads role, grants and assignments afresh. Needed only after changes
    /// made around the [`Tenancy`](hse_core::Tenancy) service (the store
    /// directly); changes through it retire the cache by its revision (see
    /// [`Authenticator::with_tenancy_revision`]).
    pub fn forget_principals(&self) {
        self.principals.clear();
    }
}

/// How long after its issue an access token may still be accepted.
fn access_window(config: &AuthConfig) -> Duration {
    config.tokens.access_ttl + config.tokens.leeway
}
