//! Fuzzes the API's JSON request bodies: the first byte picks the body
//! type, the rest is the body. Parse and the handlers' validation must end
//! in a typed verdict (see `harness/bodies.rs`), never a panic.
#![no_main]

#[path = "../harness/bodies.rs"]
#[allow(dead_code)]
mod bodies;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let kind = bodies::BODIES[usize::from(pick) % bodies::BODIES.len()];
    let _ = bodies::judge(kind, body);
});
