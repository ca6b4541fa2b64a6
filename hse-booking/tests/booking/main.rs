//! Behavioural tests of hse-booking: the same suite on the in-memory and
//! PostgreSQL adapters, plus the concurrency, property, code-lifecycle and
//! notification tests of issue 4.

mod support;

mod behaviour;
mod codes;
mod concurrency;
mod isolation;
mod logging;
mod notify;
mod property;
mod secrecy;
mod stays;
