//! Fuzzes hse-auth's credential parsers through the entry points the
//! server calls: the first byte picks the credential (and whether the
//! input replaces the issued one or is spliced into it), the rest is the
//! text. Only the issued credential may be accepted; anything else must
//! be its typed refusal (see `harness/credentials.rs`), never a panic.
#![no_main]

#[path = "../harness/credentials.rs"]
#[allow(dead_code)]
mod credentials;

use std::sync::OnceLock;

use credentials::Credentials;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

fn world() -> &'static (Runtime, Credentials) {
    static WORLD: OnceLock<(Runtime, Credentials)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let credentials = rt.block_on(Credentials::new());
        (rt, credentials)
    })
}

/// `issued` with `text` spliced in at a position picked by `at`.
fn splice(issued: &str, at: u8, text: &str) -> String {
    let cut = (usize::from(at) * issued.len() / 256).min(issued.len());
    let cut = (0..=cut).rev().find(|&i| issued.is_char_boundary(i)).unwrap_or(0);
    format!("{}{text}{}", &issued[..cut], &issued[cut..])
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (at, rest) = rest.split_first().map_or((0, rest), |(a, r)| (*a, r));
    let text = String::from_utf8_lossy(rest);
    let (rt, c) = world();
    let spliced = pick & 0x80 != 0;
    let presented = |issued: &str| {
        if spliced {
            splice(issued, at, &text)
        } else {
            text.to_string()
        }
    };
    rt.block_on(async {
        match (pick & 0x7f) % 5 {
            0 => {
                let _ = c.access_token(&presented(&c.access)).await;
            }
            1 => {
                let _ = c.api_key(&presented(&c.api_key)).await;
            }
            2 => {
                let _ = c.refresh_token(&presented(&c.refresh)).await;
            }
            3 => {
                let _ = c.second_factor(&c.challenge, &presented(&c.totp_code)).await;
                let _ = c.second_factor(&presented(&c.challenge), &c.totp_code).await;
            }
            _ => {
                let _ = credentials::cookie_header(&text);
                let _ = credentials::cookie_round_trip(&text);
            }
        }
    });
});
