//! The sign-in service end to end, on memory and on PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use hse_auth::audit::{AuditConfig, usage_audit};
use hse_auth::password::{HashParams, PasswordConfig};
use hse_auth::totp::{code_at, step_of};
use hse_auth::{
    AuthError, KeyDigest, LoginOutcome, NewApiKey, Passwords, Session, TenancyDirectory,
};
use hse_core::{ActionName, Principal};
use sqlx::PgPool;

use crate::support::{Harness, config, start};

const PASSWORD: &str = "correct horse battery";

async fn sign_in(h: &Harness, email: &str, password: &str) -> Session {
    match h.auth.login(email, password).await {
        Ok(LoginOutcome::SignedIn(s)) => s,
        other => panic!("sign-in of {email}: {other:?}"),
    }
}

fn actions(names: &[&str]) -> BTreeSet<ActionName> {
    names
        .iter()
        .map(|n| ActionName::parse(n).unwrap())
        .collect()
}

async fn sign_in_refresh_and_sign_out(h: Harness) {
    let p = h.user("ana@example.com", PASSWORD).await;
    let s1 = sign_in(&h, "ANA@example.com", PASSWORD).await;
    assert_eq!(s1.principal, p);
    assert_eq!(s1.access.expires_at, start() + Duration::minutes(15));
    assert_eq!(s1.expires_in(start()), 900);
    assert_eq!(
        h.auth.authenticate(s1.access.token.expose()).await.unwrap(),
        p
    );
    h.clock.advance(Duration::minutes(10));
    let s2 = h.auth.refresh(s1.refresh.token.expose()).await.unwrap();
    assert_eq!(s2.refresh.family_id, s1.refresh.family_id);
    assert_eq!(s2.refresh.expires_at, s1.refresh.expires_at);
    assert_ne!(s2.refresh.token, s1.refresh.token);
    // Replaying the spent token revokes the family: the newest dies too.
    assert!(matches!(
        h.auth.refresh(s1.refresh.token.expose()).await,
        Err(AuthError::RefreshReuse)
    ));
    assert!(matches!(
        h.auth.refresh(s2.refresh.token.expose()).await,
        Err(AuthError::InvalidToken)
    ));
    // A new sign-in, then sign-out ends it.
    let s3 = sign_in(&h, "ana@example.com", PASSWORD).await;
    h.auth.logout(s3.refresh.token.expose()).await.unwrap();
    assert!(h.auth.refresh(s3.refresh.token.expose()).await.is_err());
    h.auth.logout("unknown").await.unwrap();
    // Sessions end absolutely after 30 days, however often rotated.
    let s4 = sign_in(&h, "ana@example.com", PASSWORD).await;
    h.clock.advance(Duration::days(30));
    assert!(h.auth.refresh(s4.refresh.token.expose()).await.is_err());
}

async fn a_password_change_or_deactivation_ends_every_session(h: Harness) {
    let p = h.user("bo@example.com", PASSWORD).await;
    let a = sign_in(&h, "bo@example.com", PASSWORD).await;
    let b = sign_in(&h, "bo@example.com", PASSWORD).await;
    let weak = h.auth.change_password(&p, PASSWORD, "password1").await;
    assert!(matches!(weak, Err(AuthError::WeakPassword { .. })));
    let wrong = h
        .auth
        .change_password(&p, "nope nope", "a new long secret")
        .await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    h.auth
        .change_password(&p, PASSWORD, "a new long secret")
        .await
        .unwrap();
    for s in [&a, &b] {
        assert!(h.auth.refresh(s.refresh.token.expose()).await.is_err());
    }
    assert!(h.auth.login("bo@example.com", PASSWORD).await.is_err());
    let c = sign_in(&h, "bo@example.com", "a new long secret").await;
    let d = sign_in(&h, "bo@example.com", "a new long secret").await;
    h.dir.deactivate(p.user_id);
    assert!(matches!(
        h.auth.refresh(c.refresh.token.expose()).await,
        Err(AuthError::InvalidToken)
    ));
    assert_eq!(h.auth.revoke_sessions(p.user_id).await.unwrap(), 0);
    assert!(h.auth.refresh(d.refresh.token.expose()).await.is_err());
    assert!(matches!(
        h.auth.login("bo@example.com", "a new long secret").await,
        Err(AuthError::InvalidCredentials)
    ));
}

async fn api_keys_act_as_their_creator_narrowed(h: Harness) {
    let creator = h.user("cy@example.com", PASSWORD).await;
    let wanted = actions(&["read_device", "command_device"]);
    let new = NewApiKey {
        name: "door bridge".into(),
        permissions: wanted.clone(),
        expires_at: Some(start() + Duration::days(90)),
    };
    let (key, text) = h.auth.create_api_key(&creator, new.clone()).await.unwrap();
    assert!(
        text.expose()
            .starts_with(&format!("hse_{}_", key.id.as_uuid().simple()))
    );
    assert!(text.expose().ends_with(&key.last_four));
    let got = h.auth.authenticate_api_key(text.expose()).await.unwrap();
    assert_eq!(got.key_id, key.id);
    assert_eq!(got.principal.user_id, creator.user_id);
    assert_eq!(got.principal.permissions, wanted);
    assert_eq!(got.principal.scope(), creator.scope());
    // More than the creator holds is refused.
    let mut greedy = new.clone();
    greedy.permissions = actions(&["create_partner_company"]);
    assert!(matches!(
        h.auth.create_api_key(&creator, greedy).await,
        Err(AuthError::Forbidden { .. })
    ));
    // Unknown id and wrong secret fail identically.
    let (id_part, secret) = text.expose().rsplit_once('_').unwrap();
    let flipped = if secret.starts_with('0') { "1" } else { "0" };
    let wrong_secret = format!("{id_part}_{flipped}{}", &secret[1..]);
    let unknown_id = format!("hse_{}_{secret}", uuid::Uuid::now_v7().simple());
    let (e1, e2) = (
        h.auth
            .authenticate_api_key(&wrong_secret)
            .await
            .unwrap_err(),
        h.auth.authenticate_api_key(&unknown_id).await.unwrap_err(),
    );
    assert!(matches!(e1, AuthError::InvalidApiKey));
    assert_eq!(e1.to_string(), e2.to_string());
    // Revocation takes effect on the next request.
    h.auth.revoke_api_key(&creator, key.id).await.unwrap();
    assert!(matches!(
        h.auth.authenticate_api_key(text.expose()).await,
        Err(AuthError::InvalidApiKey)
    ));
    // Expiry, and the creator's deactivation, end a key too.
    let (_, short) = h
        .auth
        .create_api_key(
            &creator,
            NewApiKey {
                expires_at: Some(start() + Duration::hours(1)),
                ..new.clone()
            },
        )
        .await
        .unwrap();
    let (_, other) = h.auth.create_api_key(&creator, new).await.unwrap();
    h.clock.advance(Duration::hours(1));
    assert!(h.auth.authenticate_api_key(short.expose()).await.is_err());
    assert!(h.auth.authenticate_api_key(other.expose()).await.is_ok());
    h.dir.deactivate(creator.user_id);
    assert!(h.auth.authenticate_api_key(other.expose()).await.is_err());
    let listed = h.auth.list_api_keys(&creator).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|k| k.secret_hash.is_none()));
}

async fn totp_guards_sign_in_once_confirmed(h: Harness) {
    let p = h.user("di@example.com", PASSWORD).await;
    let setup = h.auth.enroll_totp(&p, "di@example.com").await.unwrap();
    // Until confirmed, sign-in needs no second factor.
    sign_in(&h, "di@example.com", PASSWORD).await;
    let secret = decode_base32(setup.secret.expose());
    // A code that is wrong for every step used below (a chance hit of a
    // fixed guess would make the test flaky).
    let valid: Vec<String> = (0..4)
        .map(|i| code_at(&secret, step_of(start()) + i))
        .collect();
    let wrong = (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !valid.contains(c))
        .unwrap();
    for _ in 0..3 {
        let wrong = h.auth.confirm_totp(&p, &wrong).await;
        assert!(matches!(wrong, Err(AuthError::InvalidSecondFactor)));
    }
    let throttled = h.auth.confirm_totp(&p, &wrong).await;
    assert!(matches!(throttled, Err(AuthError::RateLimited { .. })));
    h.clock.advance(Duration::seconds(1));
    let now = start() + Duration::seconds(1);
    let codes = h
        .auth
        .confirm_totp(&p, &code_at(&secret, step_of(now)))
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(29));
    let Ok(LoginOutcome::SecondFactorRequired { challenge }) =
        h.auth.login("di@example.com", PASSWORD).await
    else {
        panic!("expected a second-factor challenge");
    };
    // The challenge is no access token.
    assert!(h.auth.authenticate(challenge.token.expose()).await.is_err());
    let bad = h
        .auth
        .complete_second_factor(challenge.token.expose(), &wrong)
        .await;
    assert!(bad.is_err());
    let now = start() + Duration::seconds(30);
    let code = code_at(&secret, step_of(now));
    let s = h
        .auth
        .complete_second_factor(challenge.token.expose(), &code)
        .await
        .unwrap();
    assert_eq!(s.principal.user_id, p.user_id);
    // A recovery code works once.
    let recovery = codes[0].expose();
    assert!(
        h.auth
            .complete_second_factor(challenge.token.expose(), recovery)
            .await
            .is_ok()
    );
    assert!(
        h.auth
            .complete_second_factor(challenge.token.expose(), recovery)
            .await
            .is_err()
    );
    // The challenge expires.
    h.clock.advance(Duration::minutes(6));
    assert!(matches!(
        h.auth
            .complete_second_factor(challenge.token.expose(), codes[1].expose())
            .await,
        Err(AuthError::InvalidToken)
    ));
    // Turning it off takes a valid code; then sign-in needs the password only.
    assert!(h.auth.disable_totp(&p, &wrong).await.is_err());
    h.auth.disable_totp(&p, codes[2].expose()).await.unwrap();
    sign_in(&h, "di@example.com", PASSWORD).await;
}

fn decode_base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

crate::support::on_both!(
    sign_in_refresh_and_sign_out,
    a_password_change_or_deactivation_ends_every_session,
    api_keys_act_as_their_creator_narrowed,
    totp_guards_sign_in_once_confirmed,
);

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_answer_alike() {
    let h = Harness::memory();
    h.user("eve@example.com", PASSWORD).await;
    let (mut known, mut unknown) = (StdDuration::ZERO, StdDuration::ZERO);
    for i in 0..5 {
        h.clock.advance(Duration::hours(2)); // stay clear of the throttle
        let t = Instant::now();
        let a = h
            .auth
            .login("eve@example.com", &format!("wrong password {i}"))
            .await;
        known += t.elapsed();
        let t = Instant::now();
        let b = h
            .auth
            .login(&format!("nobody{i}@example.com"), "wrong password")
            .await;
        unknown += t.elapsed();
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(matches!(a, AuthError::InvalidCredentials));
        assert_eq!(a.to_string(), b.to_string());
    }
    let malformed = h
        .auth
        .login("not an email", "wrong password")
        .await
        .unwrap_err();
    assert!(matches!(malformed, AuthError::InvalidCredentials));
    // Both paths run one Argon2 verification; the times are reported, not
    // asserted (tests never assert on wall-clock speed).
    println!("wrong password: {known:?}, unknown email: {unknown:?} (5 attempts each)");
}

#[tokio::test]
async fn failed_sign_ins_are_delayed_more_and_more_for_unknown_accounts_too() {
    let h = Harness::memory();
    h.user("fay@example.com", PASSWORD).await;
    for email in ["fay@example.com", "ghost@example.com"] {
        for _ in 0..3 {
            let e = h.auth.login(email, "wrong wrong").await.unwrap_err();
            assert!(matches!(e, AuthError::InvalidCredentials));
        }
        let limited = h.auth.login(email, PASSWORD).await.unwrap_err();
        assert!(
            matches!(limited, AuthError::RateLimited { retry_after } if retry_after == StdDuration::from_secs(1))
        );
        h.clock.advance(Duration::seconds(1));
        let e = h.auth.login(email, "wrong wrong").await.unwrap_err();
        assert!(matches!(e, AuthError::InvalidCredentials));
        let limited = h.auth.login(email, PASSWORD).await.unwrap_err();
        assert!(
            matches!(limited, AuthError::RateLimited { retry_after } if retry_after == StdDuration::from_secs(2))
        );
    }
    // The throttle expires on its own, and success resets it.
    h.clock.advance(Duration::hours(2));
    sign_in(&h, "fay@example.com", PASSWORD).await;
    let e = h
        .auth
        .login("fay@example.com", "wrong wrong")
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials));
}

#[tokio::test]
async fn sign_ins_per_account_are_rate_limited_with_gcra() {
    let h = Harness::memory();
    h.user("gus@example.com", PASSWORD).await;
    for _ in 0..10 {
        sign_in(&h, "gus@example.com", PASSWORD).await;
    }
    let e = h.auth.login("gus@example.com", PASSWORD).await.unwrap_err();
    assert!(
        matches!(e, AuthError::RateLimited { retry_after } if retry_after == StdDuration::from_secs(6))
    );
    assert_eq!(e.http_status(), 429);
    h.clock.advance(Duration::seconds(6));
    sign_in(&h, "gus@example.com", PASSWORD).await;
}

#[tokio::test]
async fn api_keys_are_rate_limited_per_key_and_their_use_is_audited() {
    let mut c = config();
    c.api_key_quota = crate::support::quota(2, 1000);
    c.key_digest = KeyDigest::hmac(&[8; 32]).unwrap();
    let h = Harness::build(Arc::new(hse_auth::MemoryAuthStore::new()), None, c);
    let (recorder, writer) = usage_audit(h.store.clone(), AuditConfig::default());
    let auth = h.auth.clone().with_usage_audit(recorder);
    let writer = tokio::spawn(writer.run());
    let creator = h.user("hal@example.com", PASSWORD).await;
    let new = NewApiKey {
        name: "sync".into(),
        permissions: actions(&["read_device"]),
        expires_at: None,
    };
    let (key, text) = auth.create_api_key(&creator, new).await.unwrap();
    for _ in 0..2 {
        let p = auth.authenticate_api_key(text.expose()).await.unwrap();
        auth.record_key_use(p.key_id, "GET /api/v1/devices", 200);
    }
    let e = auth.authenticate_api_key(text.expose()).await.unwrap_err();
    assert!(
        matches!(e, AuthError::RateLimited { retry_after } if retry_after == StdDuration::from_secs(1))
    );
    auth.record_key_use(key.id, "GET /api/v1/devices", 429);
    drop(auth);
    drop(h.auth);
    writer.await.unwrap();
    let uses = h.store.key_usage(key.id, 10).await.unwrap();
    assert_eq!(uses.len(), 3);
}

#[tokio::test]
async fn a_weak_stored_hash_is_upgraded_at_the_next_sign_in() {
    let h = Harness::memory();
    let weak = Passwords::build(PasswordConfig {
        params: HashParams {
            memory_kib: 32,
            iterations: 1,
            parallelism: 1,
        },
        ..PasswordConfig::default()
    })
    .unwrap();
    let old = weak.hash(PASSWORD).await.unwrap();
    let p: Principal = h.dir.add("ida@example.com", Some(old.clone()));
    sign_in(&h, "ida@example.com", PASSWORD).await;
    let new = h.dir.hash_of(p.user_id).unwrap();
    assert_ne!(new, old);
    assert!(new.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{new}");
    sign_in(&h, "ida@example.com", PASSWORD).await;
}

#[tokio::test]
async fn the_tenancy_directory_signs_in_users_of_hse_core_stores() {
    use hse_core::Scope;
    use hse_core::memory::MemoryTenancyStore;

    let core = Arc::new(MemoryTenancyStore::new());
    let passwords = Passwords::build(crate::support::fast_passwords()).unwrap();
    let user = insert_root(&*core, &passwords, "root@example.com").await;
    let directory = Arc::new(TenancyDirectory::new(core));
    let deps = hse_auth::AuthDeps::in_memory(directory);
    let auth = hse_auth::Authenticator::build(deps, config()).unwrap();
    let Ok(LoginOutcome::SignedIn(s)) = auth.login("root@example.com", PASSWORD).await else {
        panic!("root sign-in failed");
    };
    let p = auth.authenticate(s.access.token.expose()).await.unwrap();
    assert_eq!((p.user_id, p.scope()), (user.id, Scope::Platform));
    auth.change_password(&p, PASSWORD, "another long secret")
        .await
        .unwrap();
    assert!(auth.refresh(s.refresh.token.expose()).await.is_err());
    assert!(matches!(
        auth.login("root@example.com", "another long secret").await,
        Ok(LoginOutcome::SignedIn(_))
    ));
    assert_eq!(
        s.cookies(chrono::Utc::now())[0].split('=').next(),
        Some("__Host-hse_access")
    );
}

/// A root user with `PASSWORD`, stored in an hse-core tenancy store.
async fn insert_root(
    core: &dyn hse_core::TenancyStore,
    passwords: &Passwords,
    email: &str,
) -> hse_core::User {
    use hse_core::model::NewUser;
    use hse_core::value::Email;
    use hse_core::{Scope, SystemRole};

    let user = NewUser {
        email: Email::parse(email).unwrap(),
        first_name: "Root".into(),
        last_name: String::new(),
        role_id: SystemRole::Root.id(),
        partner_company_id: None,
        organization_id: None,
    }
    .build(None, true, start())
    .unwrap();
    let hash = passwords.hash(PASSWORD).await.unwrap();
    core.insert_user(&Scope::Platform, &user, Some(&hash))
        .await
        .unwrap();
    user
}

/// Everything a dump of the auth tables holds, as text.
async fn dump_auth_tables(pool: &PgPool) -> String {
    let mut dump = String::new();
    for table in [
        "auth_refresh_families",
        "auth_refresh_tokens",
        "auth_api_keys",
        "auth_api_key_usage",
        "auth_totp",
        "auth_recovery_codes",
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(pool)
            .await
            .unwrap();
        assert!(
            !rows.is_empty(),
            "{table} is empty: the dump test would prove nothing"
        );
        for (row,) in rows {
            dump.push_str(&row);
            dump.push('\n');
        }
    }
    if let Some(pg_dump) = pg_dump(pool).await {
        dump.push_str(&pg_dump);
    }
    dump
}

/// `pg_dump` of the auth tables, when the tool is installed.
async fn pg_dump(pool: &PgPool) -> Option<String> {
    let (db,): (String,) = sqlx::query_as("SELECT current_database()")
        .fetch_one(pool)
        .await
        .ok()?;
    let out = std::process::Command::new("pg_dump")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "--data-only",
            "-t",
            "auth_*",
            &db,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[sqlx::test(migrations = false)]
async fn a_dump_of_the_auth_tables_holds_no_password_token_or_key_secret(pool: PgPool) {
    let h = Harness::postgres(pool.clone()).await;
    let p = h.user("jo@example.com", PASSWORD).await;
    let mut secrets: Vec<String> = vec![PASSWORD.into()];
    let s1 = sign_in(&h, "jo@example.com", PASSWORD).await;
    let s2 = h.auth.refresh(s1.refresh.token.expose()).await.unwrap();
    for s in [&s1, &s2] {
        secrets.push(s.refresh.token.expose().into());
        secrets.push(s.access.token.expose().into());
    }
    let new = NewApiKey {
        name: "dump".into(),
        permissions: actions(&["read_device"]),
        expires_at: None,
    };
    let (key, text) = h.auth.create_api_key(&p, new).await.unwrap();
    let key_secret = text.expose().rsplit('_').next().unwrap().to_owned();
    secrets.extend([text.expose().to_owned(), key_secret]);
    h.auth.record_key_use(key.id, "GET /x", 200);
    h.store
        .insert_usage(&[hse_auth::model::KeyUsage {
            key_id: key.id,
            route: "GET /x".into(),
            status: 200,
            at: start(),
        }])
        .await
        .unwrap();
    let totp = h.auth.totp().unwrap();
    let setup = totp
        .enroll(p.user_id, "jo@example.com", start())
        .await
        .unwrap();
    let raw = decode_base32(setup.secret.expose());
    let codes = totp
        .confirm(p.user_id, &code_at(&raw, step_of(start())), start())
        .await
        .unwrap();
    secrets.extend([setup.secret.expose().to_owned(), hex::encode(&raw)]);
    for c in &codes {
        secrets.push(c.expose().to_owned());
        secrets.push(c.expose().replace('-', ""));
    }
    let dump = dump_auth_tables(&pool).await;
    for secret in &secrets {
        assert!(!dump.contains(secret.as_str()), "the dump holds a secret");
        assert!(!dump.to_lowercase().contains(&secret.to_lowercase()));
    }
    assert!(dump.contains(&key.last_four));
}

/// PostgreSQL refuses U+0000 in `text` (SQLSTATE class `22`): a key
/// named with one is the caller's mistake, answered `Invalid` (400, not
/// a storage failure's 503), and no key is stored.
#[sqlx::test(migrations = false)]
async fn a_key_name_postgres_refuses_is_invalid_input_and_stores_nothing(pool: PgPool) {
    let h = Harness::postgres(pool).await;
    let p = h.user("nul@example.com", PASSWORD).await;
    let new = NewApiKey {
        name: "ops\u{0}".into(),
        permissions: actions(&["read_device"]),
        expires_at: None,
    };
    let created = h.auth.create_api_key(&p, new).await;
    let Err(refused) = created else {
        panic!("a NUL in the key name was stored");
    };
    assert!(
        matches!(&refused, AuthError::Invalid { field: "value", reason }
            if reason.contains("could not be stored")),
        "{refused:?}"
    );
    assert_eq!(refused.http_status(), 400);
    assert!(h.auth.list_api_keys(&p).await.unwrap().is_empty());
}

/// A measurement, not a check: sign-in times with the production Argon2
/// parameters for a wrong password and an unknown email. Run with
/// `cargo test -p hse-auth --test auth -- --ignored --nocapture timing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; slow in debug builds"]
async fn timing_of_failed_sign_ins_with_default_parameters() {
    let mut c = config();
    c.passwords = PasswordConfig::default();
    let h = Harness::build(Arc::new(hse_auth::MemoryAuthStore::new()), None, c);
    h.user("tim@example.com", PASSWORD).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..5 {
        h.clock.advance(Duration::hours(2));
        let t = Instant::now();
        let _ = h.auth.login("tim@example.com", "wrong password").await;
        known.push(t.elapsed());
        let t = Instant::now();
        let _ = h
            .auth
            .login(&format!("nobody{i}@example.com"), "wrong password")
            .await;
        unknown.push(t.elapsed());
    }
    println!("wrong password: {known:?}\nunknown email:  {unknown:?}");
}

/// Two concurrent refreshes with one token through the service, on
/// PostgreSQL: exactly one wins. Strict by default (the loser revokes the
/// session); with a reuse grace the winner's session survives.
#[sqlx::test(migrations = false)]
async fn concurrent_refreshes_through_the_service_have_exactly_one_winner(pool: PgPool) {
    for grace in [Duration::zero(), Duration::seconds(5)] {
        let mut c = config();
        c.refresh_reuse_grace = grace;
        crate::support::migrate(&pool).await;
        let store = Arc::new(hse_auth::postgres::PgAuthStore::new(pool.clone()));
        let h = Harness::build(store, Some(pool.clone()), c);
        let email = format!("race{}@example.com", grace.num_seconds());
        h.user(&email, PASSWORD).await;
        let s = sign_in(&h, &email, PASSWORD).await;
        let token = s.refresh.token.expose().to_owned();
        let (a, b) = tokio::join!(h.auth.refresh(&token), h.auth.refresh(&token));
        let (winner, loser) = match (a, b) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (a, b) => panic!("expected exactly one winner: {a:?} / {b:?}"),
        };
        let next = h.auth.refresh(winner.refresh.token.expose()).await;
        if grace.is_zero() {
            assert!(matches!(loser, AuthError::RefreshReuse));
            assert!(next.is_err());
        } else {
            assert!(matches!(loser, AuthError::InvalidToken));
            assert!(next.is_ok());
        }
    }
}

/// The whole service over hse-core's real PostgreSQL tenancy store: sign-in,
/// refresh, a key, a password change, and deactivation through hse-core.
#[sqlx::test(migrations = false)]
async fn the_service_runs_on_hse_cores_postgres_store(pool: PgPool) {
    use hse_core::Scope;
    use hse_core::model::UserPatch;
    use hse_core::postgres::PgTenancyStore;
    use hse_core::store::UserStore;

    crate::support::migrate(&pool).await;
    let core = Arc::new(PgTenancyStore::new(pool.clone()));
    let clock = Arc::new(hse_auth::ManualClock::new(start()));
    let deps = hse_auth::AuthDeps {
        directory: Arc::new(TenancyDirectory::new(core.clone())),
        store: Arc::new(hse_auth::postgres::PgAuthStore::new(pool.clone())),
        limiter: Arc::new(hse_auth::MemoryRateLimiter::new(clock.clone())),
        failures: Arc::new(hse_auth::throttle::MemoryFailureStore::new()),
        clock,
    };
    let auth = hse_auth::Authenticator::build(deps, config()).unwrap();
    let user = insert_root(&*core, auth.passwords(), "pg-root@example.com").await;

    let Ok(LoginOutcome::SignedIn(s)) = auth.login("pg-root@example.com", PASSWORD).await else {
        panic!("sign-in failed");
    };
    let p = auth.authenticate(s.access.token.expose()).await.unwrap();
    assert_eq!((p.user_id, p.scope()), (user.id, Scope::Platform));
    let s = auth.refresh(s.refresh.token.expose()).await.unwrap();
    let new = NewApiKey {
        name: "ops".into(),
        permissions: actions(&["read_device"]),
        expires_at: None,
    };
    let (_, key) = auth.create_api_key(&p, new).await.unwrap();
    let narrowed = auth.authenticate_api_key(key.expose()).await.unwrap();
    assert_eq!(narrowed.principal.permissions, actions(&["read_device"]));

    auth.change_password(&p, PASSWORD, "another long secret")
        .await
        .unwrap();
    assert!(auth.refresh(s.refresh.token.expose()).await.is_err());
    let Ok(LoginOutcome::SignedIn(s)) = auth
        .login("pg-root@example.com", "another long secret")
        .await
    else {
        panic!("sign-in with the new password failed");
    };

    let off = UserPatch {
        is_active: Some(false),
        ..UserPatch::default()
    };
    core.update_user(&Scope::Platform, user.id, off, start())
        .await
        .unwrap();
    assert!(auth.authenticate(s.access.token.expose()).await.is_err());
    assert!(auth.refresh(s.refresh.token.expose()).await.is_err());
    assert!(auth.authenticate_api_key(key.expose()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_hashing_bound_a_sign_in_is_told_busy_instead_of_queueing() {
    let mut c = config();
    c.passwords = PasswordConfig {
        params: HashParams {
            memory_kib: 8 * 1024,
            iterations: 2,
            parallelism: 1,
        },
        max_concurrent: 1,
        queue_timeout: StdDuration::ZERO,
    };
    let h = Harness::build(Arc::new(hse_auth::MemoryAuthStore::new()), None, c);
    h.user("kai@example.com", PASSWORD).await;
    let (a, b) = tokio::join!(
        h.auth.login("kai@example.com", PASSWORD),
        h.auth.login("kai@example.com", PASSWORD)
    );
    let busy = [&a, &b]
        .into_iter()
        .filter(|r| matches!(r, Err(AuthError::Busy)))
        .count();
    assert_eq!(busy, 1, "{a:?} / {b:?}");
    let e = a.err().or(b.err()).unwrap();
    assert_eq!((e.http_status(), e.retry_after_secs()), (503, Some(1)));
}
