//! The negative JWT suite: everything here must be refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Duration;
use hse_auth::token::{AccessTokens, TokenConfig, TokenKind};
use hse_auth::{AuthError, LoginOutcome, SigningKey};
use hse_core::UserId;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{AUDIENCE, Harness, ISSUER, SEED, start};

/// The test key as a raw jsonwebtoken key, to forge tokens with.
fn forge_key() -> EncodingKey {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&SEED);
    EncodingKey::from_ed_der(&der)
}

fn claims(user: UserId) -> Value {
    let now = start().timestamp();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": user.to_string(),
        "exp": now + 900, "iat": now, "nbf": now,
        "jti": uuid::Uuid::now_v7(), "typ": "access", "scope": "platform",
    })
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &forge_key()).unwrap()
}

fn tokens() -> AccessTokens {
    let config = TokenConfig::new(ISSUER, AUDIENCE);
    AccessTokens::build(SigningKey::ed25519_from_seed(&SEED), config).unwrap()
}

fn refused(token: &str) -> bool {
    matches!(
        tokens().verify(token, TokenKind::Access, start()),
        Err(AuthError::InvalidToken)
    )
}

#[test]
fn a_well_formed_forged_token_is_accepted_so_the_negatives_mean_something() {
    assert!(!refused(&sign(&claims(UserId::new()))));
}

#[test]
fn alg_none_in_any_case_is_refused() {
    let payload = B64.encode(claims(UserId::new()).to_string());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = B64.encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
        assert!(refused(&format!("{header}.{payload}.")), "{alg}");
        let signed = sign(&claims(UserId::new()));
        let sig = signed.rsplit('.').next().unwrap();
        assert!(
            refused(&format!("{header}.{payload}.{sig}")),
            "{alg} with sig"
        );
    }
}

#[test]
fn hs256_signed_with_the_eddsa_public_key_is_refused() {
    let public = SigningKey::ed25519_from_seed(&SEED).public_key().unwrap();
    let mut spki_der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki_der.extend_from_slice(&public);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki_der)
    );
    for secret in [
        public.to_vec(),
        B64.encode(public).into_bytes(),
        spki_der.clone(),
        pem.into_bytes(),
    ] {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(UserId::new()),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert!(refused(&token));
    }
}

#[test]
fn a_tampered_payload_and_a_stripped_signature_are_refused() {
    let token = sign(&claims(UserId::new()));
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = claims(UserId::new());
    evil["scope"] = json!("platform");
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(evil.to_string()), parts[2]);
    assert!(refused(&tampered));
    assert!(refused(&format!("{}.{}.", parts[0], parts[1])));
    assert!(refused(&format!("{}.{}", parts[0], parts[1])));
    assert!(refused(""));
    assert!(refused("not.a.jwt"));
}

#[test]
fn expiry_is_refused_beyond_the_leeway_and_accepted_within_it() {
    let mut c = claims(UserId::new());
    let exp = start().timestamp() + 900;
    c["exp"] = json!(exp);
    let token = sign(&c);
    let t = tokens();
    let leeway = TokenConfig::new(ISSUER, AUDIENCE).leeway;
    let at = |s: i64| start() + Duration::seconds(s);
    let within = at(900) + leeway - Duration::seconds(1);
    assert!(t.verify(&token, TokenKind::Access, within).is_ok());
    let beyond = at(900) + leeway;
    assert!(t.verify(&token, TokenKind::Access, beyond).is_err());
}

#[test]
fn a_future_nbf_or_iat_is_refused() {
    for claim in ["nbf", "iat"] {
        let mut c = claims(UserId::new());
        c[claim] = json!(start().timestamp() + 120);
        assert!(refused(&sign(&c)), "{claim}");
    }
    let mut within = claims(UserId::new());
    within["nbf"] = json!(start().timestamp() + 10);
    assert!(!refused(&sign(&within)));
}

#[test]
fn a_wrong_or_missing_issuer_audience_or_subject_is_refused() {
    for (claim, value) in [
        ("iss", Some(json!("https://evil.test"))),
        ("iss", None),
        ("aud", Some(json!("other-api"))),
        ("aud", None),
        ("sub", None),
        ("exp", None),
        ("nbf", None),
        ("typ", None),
        ("sub", Some(json!("not-a-uuid"))),
    ] {
        let mut c = claims(UserId::new());
        match value {
            Some(v) => c[claim] = v,
            None => {
                c.as_object_mut().unwrap().remove(claim);
            }
        }
        assert!(refused(&sign(&c)), "{claim} {c}");
    }
}

#[test]
fn tokens_of_another_kind_are_refused_as_access_tokens() {
    for typ in ["refresh", "second_factor", "id"] {
        let mut c = claims(UserId::new());
        c["typ"] = json!(typ);
        assert!(refused(&sign(&c)), "{typ}");
    }
}

#[test]
fn an_hs256_deployment_refuses_eddsa_tokens_and_accepts_its_own() {
    let key = SigningKey::hs256(&[42; 32]).unwrap();
    let t = AccessTokens::build(key, TokenConfig::new(ISSUER, AUDIENCE)).unwrap();
    let own = t
        .sign(
            UserId::new(),
            "platform".into(),
            TokenKind::Access,
            Duration::minutes(5),
            start(),
        )
        .unwrap();
    assert!(
        t.verify(own.token.expose(), TokenKind::Access, start())
            .is_ok()
    );
    let eddsa = sign(&claims(UserId::new()));
    assert!(t.verify(&eddsa, TokenKind::Access, start()).is_err());
}

#[tokio::test]
async fn a_refresh_token_used_as_an_access_token_is_refused() {
    let h = Harness::memory();
    h.user("ana@example.com", "correct horse battery").await;
    let Ok(LoginOutcome::SignedIn(session)) = h
        .auth
        .login("ana@example.com", "correct horse battery")
        .await
    else {
        panic!("sign-in failed");
    };
    let refresh = session.refresh.token.expose();
    assert!(matches!(
        h.auth.authenticate(refresh).await,
        Err(AuthError::InvalidToken)
    ));
    // And an access token is no refresh token either.
    assert!(h.auth.refresh(session.access.token.expose()).await.is_err());
}

#[tokio::test]
async fn a_token_naming_a_deleted_or_deactivated_user_is_refused() {
    let h = Harness::memory();
    for (email, gone) in [("del@example.com", true), ("off@example.com", false)] {
        let p = h.user(email, "correct horse battery").await;
        let Ok(LoginOutcome::SignedIn(session)) =
            h.auth.login(email, "correct horse battery").await
        else {
            panic!("sign-in failed");
        };
        let access = session.access.token.expose();
        assert_eq!(
            h.auth.authenticate(access).await.unwrap().user_id,
            p.user_id
        );
        if gone {
            h.dir.remove(p.user_id);
        } else {
            h.dir.deactivate(p.user_id);
        }
        assert!(matches!(
            h.auth.authenticate(access).await,
            Err(AuthError::InvalidToken)
        ));
    }
}

/// How a cached principal is retired.
#[derive(Clone, Copy, Debug)]
enum Retire {
    /// Its time-to-live passes (a change made by another process).
    Ttl,
    /// `forget_principals` (a change made around the tenancy service).
    Forget,
    /// The tenancy service counts a write (a change made through it).
    Revision,
}

/// With a principal cache, a deactivation made elsewhere is seen once the
/// cached principal is older than its time-to-live, at once after
/// `forget_principals`, and at once after a write through the tenancy
/// service whose revision the authenticator shares.
#[tokio::test]
async fn a_cached_principal_is_retired_by_ttl_forgetting_or_a_tenancy_write() {
    let mut config = crate::support::config();
    config.principal_ttl = Duration::seconds(1);
    let mut h = Harness::build(
        std::sync::Arc::new(hse_auth::memory::MemoryAuthStore::new()),
        None,
        config,
    );
    let revision = hse_core::cache::Revision::new();
    h.auth = h.auth.with_tenancy_revision(revision.clone());
    for retire in [Retire::Ttl, Retire::Forget, Retire::Revision] {
        let email = format!("cached-{retire:?}@example.com").to_lowercase();
        let p = h.user(&email, "correct horse battery").await;
        let Ok(LoginOutcome::SignedIn(session)) =
            h.auth.login(&email, "correct horse battery").await
        else {
            panic!("sign-in failed");
        };
        let access = session.access.token.expose();
        assert!(h.auth.authenticate(access).await.is_ok());
        h.dir.deactivate(p.user_id);
        // Within the time-to-live the cached principal still answers.
        assert!(h.auth.authenticate(access).await.is_ok(), "{retire:?}");
        match retire {
            Retire::Ttl => h.clock.advance(Duration::seconds(1)),
            Retire::Forget => h.auth.forget_principals(),
            Retire::Revision => revision.bump(),
        }
        assert!(
            matches!(
                h.auth.authenticate(access).await,
                Err(AuthError::InvalidToken)
            ),
            "{retire:?}"
        );
    }
}

#[tokio::test]
async fn a_token_of_a_user_moved_to_another_tenant_is_refused() {
    let h = Harness::memory();
    let p = h.user("mover@example.com", "correct horse battery").await;
    let Ok(LoginOutcome::SignedIn(s)) = h
        .auth
        .login("mover@example.com", "correct horse battery")
        .await
    else {
        panic!("sign-in failed");
    };
    h.dir.move_to_other_organization(p.user_id);
    assert!(h.auth.authenticate(s.access.token.expose()).await.is_err());
}
