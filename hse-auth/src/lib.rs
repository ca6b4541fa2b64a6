//! Authentication for HSE: argon2id passwords, JWT access tokens with
//! rotating refresh tokens, scoped and rate-limited API keys.
//!
//! This crate is filled by its own issue; for now it only reserves the name
//! and its place in the dependency graph (`hse-auth -> hse-core`).
