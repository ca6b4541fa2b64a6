//! Devices for HSE: the device wire protocol, the zero-loss ingest
//! pipeline, time series with rollups, live state and the gRPC service.
//!
//! This crate is filled by its own issue; for now it only reserves the name
//! and its place in the dependency graph (`hse-devices -> hse-core`).
