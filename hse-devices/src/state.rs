//! Current device state: connection, last seen, last event per type.
//!
//! Updated on ingest (by the queue adapter, in the same round trip as the
//! enqueue) and by sessions on connect and disconnect, so it is real time.
//! [`MemoryState`] here; `RedisState` in `redis` (feature `redis`) keeps it in the
//! hash `{prefix}state:{device_id}`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use hse_core::DeviceId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::QueueError;
use crate::model::Event;

/// The latest event of one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    /// Its id.
    pub event_id: Uuid,
    /// Device time, Unix milliseconds.
    pub ts_ms: i64,
    /// Its value.
    pub value: Option<f64>,
    /// Its unit.
    pub unit: Option<String>,
}

impl LastEvent {
    /// The state kept of an event.
    #[must_use]
    pub fn of(event: &Event) -> Self {
        Self {
            event_id: event.event_id,
            ts_ms: event.ts_ms,
            value: event.value,
            unit: event.unit.clone(),
        }
    }
}

/// A device's connection, as sessions report it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Whether a session is open.
    pub connected: bool,
    /// `tcp`, `websocket`, ...
    pub protocol: String,
    /// The peer address.
    pub remote_address: String,
}

/// Everything known about a device right now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Its connection.
    pub connection: Connection,
    /// Last time it was heard from, Unix milliseconds.
    pub last_seen_ms: Option<i64>,
    /// Latest event per event type.
    pub last_events: BTreeMap<String, LastEvent>,
}

impl DeviceState {
    /// `online` while connected, else `offline`; `error` while connected
    /// and the latest event of all is an `error`.
    #[must_use]
    pub fn status(&self) -> &'static str {
        if !self.connection.connected {
            return "offline";
        }
        let newest = self.last_events.iter().max_by_key(|(_, e)| e.ts_ms);
        match newest {
            Some((kind, _)) if kind == "error" => "error",
            _ => "online",
        }
    }

    /// The most recent event of any type, with its type.
    #[must_use]
    pub fn last_event(&self) -> Option<(&str, &LastEvent)> {
        self.last_events
            .iter()
            .max_by_key(|(_, e)| e.ts_ms)
            .map(|(k, e)| (k.as_str(), e))
    }
}

/// Reads and writes current state.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// Records a (dis)connection at `now_ms`. A disconnect changes nothing
    /// when the stored connection is another one (the device reconnected).
    async fn set_connection(
        &self,
        device_id: DeviceId,
        connection: &Connection,
        now_ms: i64,
    ) -> Result<(), QueueError>;
    /// Marks the device heard from at `now_ms` (heartbeats).
    async fn touch(&self, device_id: DeviceId, now_ms: i64) -> Result<(), QueueError>;
    /// The device's state, if anything is known.
    async fn get(&self, device_id: DeviceId) -> Result<Option<DeviceState>, QueueError>;
}

/// In-process state.
#[derive(Debug, Default)]
pub struct MemoryState {
    devices: Mutex<HashMap<DeviceId, DeviceState>>,
}

impl MemoryState {
    /// Empty state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies ingested events (called by the in-process queue).
    pub fn record_events(&self, events: &[Event]) {
        let mut devices = self.lock();
        for event in events {
            let state = devices.entry(event.device_id).or_default();
            state.last_seen_ms = Some(state.last_seen_ms.unwrap_or(0).max(event.ts_ms));
            state
                .last_events
                .insert(event.event_type.to_string(), LastEvent::of(event));
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, DeviceState>> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl StateStore for MemoryState {
    async fn set_connection(
        &self,
        device_id: DeviceId,
        connection: &Connection,
        now_ms: i64,
    ) -> Result<(), QueueError> {
        let mut devices = self.lock();
        let state = devices.entry(device_id).or_default();
        state.last_seen_ms = Some(now_ms);
        let someone_else = state.connection.remote_address != connection.remote_address;
        if connection.connected || !someone_else {
            state.connection = connection.clone();
        }
        Ok(())
    }

    async fn touch(&self, device_id: DeviceId, now_ms: i64) -> Result<(), QueueError> {
        self.lock().entry(device_id).or_default().last_seen_ms = Some(now_ms);
        Ok(())
    }

    async fn get(&self, device_id: DeviceId) -> Result<Option<DeviceState>, QueueError> {
        Ok(self.lock().get(&device_id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;

    #[tokio::test]
    async fn state_follows_connections_and_events() {
        let state = MemoryState::new();
        let id = DeviceId::new();
        let conn = Connection {
            connected: true,
            protocol: "tcp".into(),
            remote_address: "127.0.0.1:1".into(),
        };
        state.set_connection(id, &conn, 10).await.unwrap();
        let event = Event {
            event_id: Uuid::now_v7(),
            device_id: id,
            ts_ms: 20,
            event_type: EventType::parse("error").unwrap(),
            value: None,
            unit: None,
            metadata: None,
            source: None,
        };
        state.record_events(&[event]);
        let got = state.get(id).await.unwrap().unwrap();
        assert_eq!(got.status(), "error");
        assert_eq!(got.last_seen_ms, Some(20));
        assert_eq!(got.last_event().map(|(k, _)| k), Some("error"));
        let gone = Connection {
            connected: false,
            ..conn
        };
        state.set_connection(id, &gone, 30).await.unwrap();
        assert_eq!(state.get(id).await.unwrap().unwrap().status(), "offline");
    }
}
