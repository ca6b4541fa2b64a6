//! The real `hse-server` binary, started on free ports and driven as its
//! operators and clients drive it: over HTTP, the device TCP protocol and
//! gRPC, stopped with a real SIGTERM. One test binary for all of it
//! (link time); the HTTP client, the onboarding story and the device side
//! are the examples' own (`examples/support/`).

#[path = "../../../examples/support/device_tls.rs"]
mod device_tls;
#[path = "../../../examples/support/http.rs"]
mod http;
#[path = "../../../examples/support/line_device.rs"]
mod line_device;
#[path = "../../../examples/support/onboarding.rs"]
mod onboarding;

mod binary;
mod cluster;
mod e2e;
mod hardening;
mod logs;
mod operator;
mod outage;
mod raw_http;
mod redis_restart;
mod selfhost;
mod selfhost_redis;
mod services;
mod shutdown;
mod sign_in;
mod tls;
mod writer;
