//! The HTTP API used as a client would (through the router, no sockets):
//! authentication, problem+json errors, tenant isolation and onboarding.

mod adversarial;
mod bookings;
mod client;
mod devices;
mod docs;
mod edge;
mod flows;
mod isolation;
mod numbers;
