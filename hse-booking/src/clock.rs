//! Where workers get the time from, so tests can control it: hse-core's
//! injectable clock, re-exported.

pub use hse_core::clock::{Clock, ManualClock, SystemClock};
