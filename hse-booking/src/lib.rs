//! Bookings for HSE: guests, race-free bookings of areas, door-lock codes
//! with a programming lifecycle, and notifications.
//!
//! This crate is filled by its own issue; for now it only reserves the name
//! and its place in the dependency graph (`hse-booking -> hse-core`).
