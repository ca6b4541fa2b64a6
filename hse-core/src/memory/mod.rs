//! In-memory adapter of the [`TenancyStore`](crate::TenancyStore) port.
//!
//! It is the embedded default of `hse-server` and the test double partners
//! use in their own tests, so it keeps every guarantee the PostgreSQL adapter
//! keeps: scope filtering, in-tenant references, uniqueness, tree shape,
//! atomic updates and the schema's cascades (deleting a partner company, an
//! organization or a role withdraws its invitations). One mutex serialises
//! all writes, which is what makes "check, then write" atomic here; nothing
//! is held across an `.await`.

mod areas;
mod devices;
mod establishments;
mod invitations;
mod roles;
mod state;
mod tenants;
mod users;

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use self::state::State;
use crate::error::{CoreError, Result};
use crate::principal::Resource;
use crate::store::{PlacementStore, Target};

/// The in-memory store. Cheap to create; share it behind an `Arc`.
///
/// Nothing is durable: for trying the SDK, tests and demos. The same
/// [`crate::Tenancy`] runs over `hse_core::postgres::PgTenancyStore` in
/// production; `examples/embed_sdk.rs` shows the memory stores in use,
/// `examples/embed_postgres.rs` the PostgreSQL ones.
#[derive(Debug, Default)]
pub struct MemoryTenancyStore {
    state: Mutex<State>,
}

impl MemoryTenancyStore {
    /// An empty store (system roles and the catalogue are built in).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| CoreError::Storage("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl PlacementStore for MemoryTenancyStore {
    async fn locate(&self, target: Target) -> Result<Option<Resource>> {
        Ok(self.state()?.locate(target))
    }
}
