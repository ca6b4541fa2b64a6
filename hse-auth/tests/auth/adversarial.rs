//! Adversarial input to the credential parsers (issue 8): arbitrary text
//! and structure-aware mutations of real access tokens, refresh tokens, API
//! keys, cookies and second-factor answers are refused with the
//! credential's typed error and never panic; only the issued credential is
//! let in, and it round-trips. The checks live in
//! `fuzz/harness/credentials.rs`, which the `auth_tokens` cargo-fuzz
//! target runs on the same entry points.

#[path = "../../../fuzz/harness/credentials.rs"]
mod credentials;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use credentials::{Credentials, Mutation, Verdict, cookie_header, cookie_round_trip, mutate};
use proptest::prelude::*;
use serde_json::Value;
use tokio::runtime::Runtime;

thread_local! {
    /// One signed-in world per test thread (each proptest runs on its own).
    static WORLD: (Runtime, Credentials) = {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let credentials = rt.block_on(Credentials::new());
        (rt, credentials)
    };
}

/// Runs `check` against the thread's world.
fn with_world<T>(check: impl AsyncFnOnce(&Credentials) -> T) -> T {
    WORLD.with(|(rt, c)| rt.block_on(check(c)))
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, any::<char>()).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (
            at,
            prop::sample::select(vec!['.', '_', '=', ';', ' ', '\0', 'A', 'a', '0', '-', 'é'])
        )
            .prop_map(|(i, c)| Mutation::Insert(i, c)),
        (at, 1..8usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        at.prop_map(Mutation::Truncate),
        at.prop_map(Mutation::SwapCase),
        (at, 1..16usize).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

/// Text a client could send: anything, or something token-shaped.
fn presented() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_.=-]{0,400}",
        "hse_[0-9a-fA-F]{32}_[0-9a-fA-F]{48}",
        "[A-Za-z0-9_-]{10,60}\\.[A-Za-z0-9_-]{10,300}\\.[A-Za-z0-9_-]{0,90}",
        "[0-9]{0,10}",
    ]
}

/// A JSON value to put into a claim.
fn claim_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        Just(Value::String("platform".into())),
        Just(Value::String("second_factor".into())),
        Just(Value::from(i64::MAX)),
    ]
}

/// The issued access token with one claim replaced and the signature kept.
fn tamper_claim(token: &str, claim: &str, value: Value) -> String {
    let mut parts = token.splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("a JWT has three parts");
    };
    let mut claims: Value = serde_json::from_slice(&B64.decode(payload).expect("payload decodes"))
        .expect("claims parse");
    claims[claim] = value;
    format!("{header}.{}.{signature}", B64.encode(claims.to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_access_tokens_are_refused(text in presented()) {
        with_world(async |c| {
            let expected = if text == c.access { Verdict::Accepted } else { Verdict::Refused };
            assert_eq!(c.access_token(&text).await, expected);
        });
    }

    #[test]
    fn mutated_access_tokens_are_refused(edits in mutations()) {
        with_world(async |c| {
            let text = mutate(&c.access, &edits);
            let expected = if text == c.access { Verdict::Accepted } else { Verdict::Refused };
            assert_eq!(c.access_token(&text).await, expected, "{text}");
        });
    }

    #[test]
    fn access_tokens_with_a_tampered_claim_are_refused(
        claim in prop::sample::select(vec!["sub", "exp", "nbf", "iat", "iss", "aud", "typ", "scope", "jti", "extra"]),
        value in claim_value(),
    ) {
        with_world(async |c| {
            let text = tamper_claim(&c.access, claim, value);
            prop_assume!(text != c.access);
            assert_eq!(c.access_token(&text).await, Verdict::Refused, "{text}");
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_and_mutated_api_keys_are_refused(text in presented(), edits in mutations()) {
        with_world(async |c| {
            assert_eq!(c.api_key(&text).await, Verdict::Refused);
            let mutated = mutate(&c.api_key, &edits);
            // Only a change of case inside the (hex, public) id may still be the key.
            // Compared as bytes: a mutation may put a multi-byte character
            // across any of these boundaries.
            let (m, k) = (mutated.as_bytes(), c.api_key.as_bytes());
            let same = m.len() == k.len()
                && m[..4] == k[..4]
                && m[4..36].eq_ignore_ascii_case(&k[4..36])
                && m[36..] == k[36..];
            let verdict = c.api_key(&mutated).await;
            if !same {
                assert_eq!(verdict, Verdict::Refused, "{mutated}");
            }
        });
    }

    #[test]
    fn arbitrary_and_mutated_refresh_tokens_are_refused(text in presented(), edits in mutations()) {
        with_world(async |c| {
            let mutated = mutate(&c.refresh, &edits);
            for t in [text.as_str(), mutated.as_str()] {
                let expected = if t == c.refresh { Verdict::Accepted } else { Verdict::Refused };
                assert_eq!(c.refresh_token(t).await, expected, "{t}");
            }
        });
    }

    #[test]
    fn wrong_second_factor_answers_are_refused(code in presented(), edits in mutations()) {
        with_world(async |c| {
            // A wrong code on the real challenge, and the real code on a mutated challenge.
            assert_eq!(
                c.second_factor(&c.challenge, &code).await,
                if code == c.totp_code { Verdict::Accepted } else { Verdict::Refused },
            );
            let challenge = mutate(&c.challenge, &edits);
            let expected = if challenge == c.challenge { Verdict::Accepted } else { Verdict::Refused };
            assert_eq!(c.second_factor(&challenge, &c.totp_code).await, expected);
        });
    }

    #[test]
    fn cookie_headers_yield_only_their_own_pairs(header in any::<String>(), token in "[A-Za-z0-9_.-]{0,200}") {
        let _ = cookie_header(&header);
        prop_assert_eq!(cookie_round_trip(&token), Some(token.clone()));
        let header = format!("a=1; __Host-hse_access={token}; b=2");
        prop_assert_eq!(cookie_header(&header), Some(token.as_str()));
    }
}

#[test]
fn the_issued_credentials_are_accepted_so_the_refusals_mean_something() {
    with_world(async |c| {
        assert_eq!(c.access_token(&c.access.clone()).await, Verdict::Accepted);
        assert_eq!(c.api_key(&c.api_key.clone()).await, Verdict::Accepted);
        let upper_id = format!(
            "hse_{}{}",
            c.api_key[4..36].to_ascii_uppercase(),
            &c.api_key[36..]
        );
        assert_eq!(c.api_key(&upper_id).await, Verdict::Accepted);
        // The live refresh token rotates once; presented again, it is reuse.
        let next = c
            .auth
            .refresh(&c.refresh)
            .await
            .expect("the live refresh token rotates");
        assert!(matches!(
            c.auth.refresh(&c.refresh).await,
            Err(hse_auth::AuthError::RefreshReuse)
        ));
        assert!(
            matches!(
                c.auth.refresh(next.refresh.token.expose()).await,
                Err(hse_auth::AuthError::InvalidToken)
            ),
            "reuse revoked the whole family"
        );
        c.auth
            .complete_second_factor(&c.challenge, &c.totp_code)
            .await
            .expect("the right code signs in");
        assert!(
            c.auth
                .complete_second_factor(&c.challenge, &c.totp_code)
                .await
                .is_err(),
            "a code is spent once"
        );
    });
}
