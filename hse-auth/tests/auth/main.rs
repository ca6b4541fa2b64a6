//! hse-auth's integration tests: one binary, several suites.
//!
//! PostgreSQL tests use `#[sqlx::test]` (`DATABASE_URL`, a fresh database
//! each); Redis tests read `HSE_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and use a random key prefix each.

mod adversarial;
mod behaviour;
mod jwt;
mod keys;
mod limits;
mod nodes;
mod service;
mod sessions;
mod sign_in;
mod support;
