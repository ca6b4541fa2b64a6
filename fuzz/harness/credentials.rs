//! hse-auth's token and key parsers under adversarial input, shared by the
//! `auth_tokens` cargo-fuzz target and the stable proptests in
//! `hse-auth/tests/auth/adversarial.rs` (both include this file).
//!
//! [`Credentials::new`] signs a user in for real (in-memory adapters, a
//! manual clock): an access token, a live refresh token, an API key and a
//! pending second-factor challenge with its current TOTP code. Each check
//! hands presented text to the entry point the server calls with it and
//! panics, failing the fuzz run or the proptest, unless the answer is the
//! typed refusal of that credential, or an acceptance of exactly the
//! credential that was issued.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hse_auth::api_key::PresentedKey;
use hse_auth::cookie::{ACCESS_COOKIE, access_cookie, read_cookie};
use hse_auth::password::HashParams;
use hse_auth::rate_limit::MemoryRateLimiter;
use hse_auth::throttle::MemoryFailureStore;
use hse_auth::totp::{SealingKey, code_at, step_of};
use hse_auth::{
    AuthConfig, AuthDeps, AuthError, Authenticator, LoginOutcome, ManualClock, MemoryAuthStore,
    NewApiKey, PasswordConfig, SigningKey, TenancyDirectory,
};
use hse_core::clock::Clock;
use hse_core::model::NewUser;
use hse_core::value::Email;
use hse_core::{ActionName, Principal, Scope, SystemRole, TenancyStore};

const PASSWORD: &str = "adversarial passphrase";

/// Whether a presented credential was let in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Refused with the credential's typed error (or rate-limited).
    Refused,
    /// Accepted: it was the issued credential.
    Accepted,
}

/// A signed-in world to present credentials to.
pub(crate) struct Credentials {
    /// The service the server authenticates requests with.
    pub(crate) auth: Authenticator,
    /// A valid access token.
    pub(crate) access: String,
    /// A live refresh token (the checks never spend it).
    pub(crate) refresh: String,
    /// A valid API key, `hse_<id>_<secret>`.
    pub(crate) api_key: String,
    /// A pending second-factor challenge.
    pub(crate) challenge: String,
    /// The challenge's user's TOTP code now.
    pub(crate) totp_code: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials")
    }
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

impl Credentials {
    /// Signs two users in: one plain, one with TOTP enrolled.
    ///
    /// # Panics
    /// When any step of a normal sign-in fails.
    pub(crate) async fn new() -> Self {
        let tenancy = Arc::new(hse_core::memory::MemoryTenancyStore::new());
        let clock = Arc::new(ManualClock::new(start()));
        let deps = AuthDeps {
            directory: Arc::new(TenancyDirectory::new(tenancy.clone())),
            store: Arc::new(MemoryAuthStore::new()),
            limiter: Arc::new(MemoryRateLimiter::new(clock.clone())),
            failures: Arc::new(MemoryFailureStore::new()),
            clock: clock.clone(),
        };
        let mut config = AuthConfig::new(
            SigningKey::ed25519_from_seed(&[7; 32]),
            "https://hse.test",
            "hse-api",
        );
        config.passwords = PasswordConfig {
            params: HashParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..PasswordConfig::default()
        };
        config.totp_key = Some(SealingKey::new([5; 32]));
        let auth = Authenticator::build(deps, config).expect("authenticator builds");
        add_root(&auth, tenancy.as_ref(), "plain@hse.test").await;
        add_root(&auth, tenancy.as_ref(), "mfa@hse.test").await;
        let session = signed_in(&auth, "plain@hse.test").await;
        let principal = auth
            .authenticate(session.access.token.expose())
            .await
            .expect("access works");
        let (_, api_key) = auth
            .create_api_key(
                &principal,
                NewApiKey {
                    name: "fuzz".into(),
                    permissions: [ActionName::parse("read_booking").expect("known action")].into(),
                    expires_at: None,
                },
            )
            .await
            .expect("key created");
        let (challenge, totp_code) = second_factor_challenge(&auth, &clock).await;
        Self {
            access: session.access.token.expose().to_owned(),
            refresh: session.refresh.token.expose().to_owned(),
            api_key: api_key.expose().to_owned(),
            auth,
            challenge,
            totp_code,
        }
    }

    /// An access token, as the `Authorization: Bearer` or cookie path checks it.
    pub(crate) async fn access_token(&self, text: &str) -> Verdict {
        match self.auth.authenticate(text).await {
            Ok(_) => {
                assert_eq!(
                    text, self.access,
                    "a token other than the issued one was accepted"
                );
                Verdict::Accepted
            }
            Err(AuthError::InvalidToken) => Verdict::Refused,
            Err(other) => panic!("an access token was refused with {other:?}"),
        }
    }

    /// An API key, as the `X-API-Key` path checks it.
    pub(crate) async fn api_key(&self, text: &str) -> Verdict {
        let parsed = PresentedKey::parse(text);
        if parsed.is_ok() {
            assert!(
                text.len() == 85 && text.starts_with("hse_"),
                "{text:?} parsed as a key"
            );
        }
        match self.auth.authenticate_api_key(text).await {
            Ok(_) => {
                // The id is a UUID in hex, so its case is free; the secret is not.
                let ours = PresentedKey::parse(&self.api_key).expect("issued key parses");
                let theirs = parsed.expect("an accepted key parses");
                assert_eq!(ours.id(), theirs.id());
                assert_eq!(
                    text[37..],
                    self.api_key[37..],
                    "another secret was accepted"
                );
                Verdict::Accepted
            }
            Err(AuthError::InvalidApiKey | AuthError::RateLimited { .. }) => Verdict::Refused,
            Err(other) => panic!("an API key was refused with {other:?}"),
        }
    }

    /// A refresh token other than the live one (which this never spends).
    pub(crate) async fn refresh_token(&self, text: &str) -> Verdict {
        if text == self.refresh {
            return Verdict::Accepted;
        }
        match self.auth.refresh(text).await {
            Err(AuthError::InvalidToken) => Verdict::Refused,
            other => panic!("a forged refresh token gave {other:?}"),
        }
    }

    /// A second-factor answer: `challenge` and `code` other than the valid
    /// pair (which this never spends).
    pub(crate) async fn second_factor(&self, challenge: &str, code: &str) -> Verdict {
        if challenge == self.challenge && code == self.totp_code {
            return Verdict::Accepted;
        }
        match self.auth.complete_second_factor(challenge, code).await {
            Err(
                AuthError::InvalidToken
                | AuthError::InvalidSecondFactor
                | AuthError::RateLimited { .. },
            ) => Verdict::Refused,
            other => panic!("a wrong second factor gave {other:?}"),
        }
    }
}

/// A `Cookie` request header: whatever is found under the access cookie's
/// name is the value of one `name=value` pair of the header.
pub(crate) fn cookie_header(header: &str) -> Option<&str> {
    let found = read_cookie(header, ACCESS_COOKIE)?;
    let pair = format!("{ACCESS_COOKIE}={found}");
    assert!(
        header.split(';').any(|p| p.trim() == pair),
        "{found:?} is no pair of {header:?}"
    );
    Some(found)
}

/// A token survives being set as the access cookie and read back.
pub(crate) fn cookie_round_trip(token: &str) -> Option<String> {
    read_cookie(&access_cookie(token, Duration::minutes(15)), ACCESS_COOKIE).map(str::to_owned)
}

async fn add_root(auth: &Authenticator, tenancy: &dyn TenancyStore, email: &str) {
    let user = NewUser {
        email: Email::parse(email).expect("email"),
        first_name: "Root".into(),
        last_name: String::new(),
        role_id: SystemRole::Root.id(),
        partner_company_id: None,
        organization_id: None,
    }
    .build(None, true, start())
    .expect("user builds");
    let hash = auth.passwords().hash(PASSWORD).await.expect("hash");
    tenancy
        .insert_user(&Scope::Platform, &user, Some(&hash))
        .await
        .expect("user stored");
}

async fn signed_in(auth: &Authenticator, email: &str) -> hse_auth::Session {
    match auth.login(email, PASSWORD).await.expect("sign-in") {
        LoginOutcome::SignedIn(session) => session,
        LoginOutcome::SecondFactorRequired { .. } => panic!("no second factor enrolled yet"),
    }
}

/// Enrolls TOTP for the `mfa` user and signs in again up to the
/// challenge; returns it and the code of the next time step.
async fn second_factor_challenge(auth: &Authenticator, clock: &ManualClock) -> (String, String) {
    let session = signed_in(auth, "mfa@hse.test").await;
    let who: Principal = auth
        .authenticate(session.access.token.expose())
        .await
        .expect("access works");
    let setup = auth.enroll_totp(&who, "mfa").await.expect("enrolls");
    let secret = base32_decode(setup.secret.expose());
    let first = code_at(&secret, step_of(clock.now()));
    auth.confirm_totp(&who, &first).await.expect("confirms");
    // The confirming code's step is spent: the challenge is answered in the next.
    clock.advance(Duration::seconds(30));
    let LoginOutcome::SecondFactorRequired { challenge } =
        auth.login("mfa@hse.test", PASSWORD).await.expect("sign-in")
    else {
        panic!("the second factor is enrolled");
    };
    let code = code_at(&secret, step_of(clock.now()));
    (challenge.token.expose().to_owned(), code)
}

/// One structure-blind edit of a text; positions wrap around its length.
#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    /// Replace the character at a position.
    Replace(usize, char),
    /// Insert a character before a position.
    Insert(usize, char),
    /// Delete up to `n` characters from a position.
    Delete(usize, usize),
    /// Keep only the characters before a position.
    Truncate(usize),
    /// Flip the ASCII case of the character at a position.
    SwapCase(usize),
    /// Repeat the characters from a position, up to `n` of them.
    Duplicate(usize, usize),
}

/// `text` with `edits` applied in order.
pub(crate) fn mutate(text: &str, edits: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let at = |i: usize, extra: usize| i % (chars.len() + extra).max(1);
        match *edit {
            Mutation::Replace(i, c) if !chars.is_empty() => {
                let i = at(i, 0);
                chars[i] = c;
            }
            Mutation::Insert(i, c) => {
                let i = at(i, 1);
                chars.insert(i, c);
            }
            Mutation::Delete(i, n) if !chars.is_empty() => {
                let i = at(i, 0);
                let end = (i + n.max(1)).min(chars.len());
                chars.drain(i..end);
            }
            Mutation::Truncate(i) => {
                let i = at(i, 1);
                chars.truncate(i);
            }
            Mutation::SwapCase(i) if !chars.is_empty() => {
                let i = at(i, 0);
                let c = chars[i];
                chars[i] = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
            Mutation::Duplicate(i, n) if !chars.is_empty() => {
                let i = at(i, 0);
                let end = (i + n.max(1)).min(chars.len());
                let copy: Vec<char> = chars[i..end].to_vec();
                chars.splice(end..end, copy);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// RFC 4648 base32 (no padding), as enrollment shows the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => continue,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}
