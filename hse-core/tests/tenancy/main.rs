//! The tenancy service used as a client would, on the memory and the
//! PostgreSQL adapters: the seed's rules with an allowed and a refused case
//! each, onboarding, and the visibility property over random tenant trees.

mod service;
mod support;
mod visibility;
