//! Fuzzes the device codec: any bytes decode to a frame or a rejection,
//! never a panic; whatever is accepted satisfies the protocol's limits.
#![no_main]

use hse_devices::codec::{self, Inbound, Limits, MAX_EVENTS_PER_FRAME, MAX_FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_764_288_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        now_ms: NOW,
        retention_ms: 730 * 86_400_000,
    };
    match codec::decode(data, &limits) {
        Ok(Inbound::Events { events, .. }) => {
            assert!(data.len() <= MAX_FRAME_BYTES);
            assert!(!events.is_empty() && events.len() <= MAX_EVENTS_PER_FRAME);
            for e in events {
                assert!(e.value.is_none_or(f64::is_finite));
                assert!(
                    e.ts_ms
                        .is_none_or(|t| t <= NOW + codec::FUTURE_TOLERANCE_MS)
                );
                assert!(
                    e.unit
                        .is_none_or(|u| u.chars().count() <= codec::MAX_UNIT_CHARS)
                );
            }
        }
        Ok(_) | Err(_) => {}
    }
});
