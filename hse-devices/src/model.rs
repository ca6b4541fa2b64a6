//! Plain data of the pipeline: validated event types and events.
//!
//! An [`Event`] is built once at the edge (the codec, or another protocol
//! adapter) and passed inward unchanged: through the queue, the batch writer
//! and into storage. Its `event_id` makes every later step idempotent.

use std::fmt;

use hse_core::DeviceId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Invalid;

/// Event types pushed to gRPC subscribers whatever they asked for.
pub const RELEVANT_EVENT_TYPES: [&str; 3] = ["alarm", "state_change", "error"];

/// An event type: 1–50 characters of `[a-z0-9_.-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

impl EventType {
    /// Longest accepted event type.
    pub const MAX_LEN: usize = 50;

    /// Validates an event type.
    ///
    /// # Errors
    /// [`Invalid`] naming `event_type` when empty, too long or with a
    /// character outside `[a-z0-9_.-]`.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(Invalid::new("event_type", "must be 1-50 characters"));
        }
        if !text.chars().all(ok_char) {
            return Err(Invalid::new(
                "event_type",
                "allowed characters are [a-z0-9_.-]",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The type as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether subscribers always receive this type (`alarm`,
    /// `state_change`, `error`).
    #[must_use]
    pub fn is_relevant(&self) -> bool {
        RELEVANT_EVENT_TYPES.contains(&self.0.as_str())
    }
}

impl TryFrom<String> for EventType {
    type Error = Invalid;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EventType> for String {
    fn from(value: EventType) -> Self {
        value.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

/// One validated device event, as queued and stored.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency key: the same `(device_id, event_id)` is stored once.
    pub event_id: Uuid,
    /// The device that sent it.
    pub device_id: DeviceId,
    /// Device time, Unix milliseconds.
    pub ts_ms: i64,
    /// What happened.
    pub event_type: EventType,
    /// A finite measurement, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Unit of `value`, up to 20 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Free-form JSON object, up to 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The protocol it arrived by (`tcp`, `websocket`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Event {
    /// Approximate bytes this event holds in memory: the struct, its
    /// strings and its metadata (keys, strings and a fixed cost per JSON
    /// node). Bounds the in-process queue without serializing anything.
    #[must_use]
    pub fn footprint(&self) -> usize {
        const JSON_NODE: usize = 32;
        fn json(value: &serde_json::Value) -> usize {
            JSON_NODE
                + match value {
                    serde_json::Value::String(s) => s.len(),
                    serde_json::Value::Array(list) => list.iter().map(json).sum(),
                    serde_json::Value::Object(map) => {
                        map.iter().map(|(k, v)| k.len() + json(v)).sum()
                    }
                    _ => 0,
                }
        }
        std::mem::size_of::<Self>()
            + self.event_type.as_str().len()
            + self.unit.as_ref().map_or(0, String::len)
            + self.source.as_ref().map_or(0, String::len)
            + self
                .metadata
                .as_ref()
                .map_or(0, |m| m.iter().map(|(k, v)| k.len() + json(v)).sum())
    }
}

impl fmt::Debug for Event {
    /// Ids and type only: payloads are never logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event_id", &self.event_id)
            .field("device_id", &self.device_id)
            .field("ts_ms", &self.ts_ms)
            .field("event_type", &self.event_type)
            .finish_non_exhaustive()
    }
}

/// The event id of an event sent without one: a stable hash of
/// `(device_id, session_id, seq, index)`, so a redelivery of the same frame
/// within a session maps to the same id.
#[must_use]
pub fn derived_event_id(device_id: DeviceId, session_id: Uuid, seq: u64, index: usize) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(device_id.as_uuid().as_bytes());
    hasher.update(session_id.as_bytes());
    hasher.update(seq.to_be_bytes());
    hasher.update((index as u64).to_be_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_accept_the_documented_alphabet() {
        assert!(EventType::parse("temperature").is_ok());
        assert!(EventType::parse("door.code_used-2").is_ok());
        assert!(EventType::parse("").is_err());
        assert!(EventType::parse("Temperature").is_err());
        assert!(EventType::parse("a b").is_err());
        assert!(EventType::parse(&"a".repeat(51)).is_err());
        assert!(EventType::parse(&"a".repeat(50)).is_ok());
    }

    #[test]
    fn relevant_types_are_alarm_state_change_and_error() {
        for t in ["alarm", "state_change", "error"] {
            assert!(EventType::parse(t).unwrap().is_relevant());
        }
        assert!(!EventType::parse("temperature").unwrap().is_relevant());
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let d = DeviceId::new();
        let s = Uuid::now_v7();
        assert_eq!(derived_event_id(d, s, 1, 0), derived_event_id(d, s, 1, 0));
        assert_ne!(derived_event_id(d, s, 1, 0), derived_event_id(d, s, 1, 1));
        assert_ne!(derived_event_id(d, s, 1, 0), derived_event_id(d, s, 2, 0));
    }

    #[test]
    fn debug_never_shows_payloads() {
        let e = Event {
            event_id: Uuid::now_v7(),
            device_id: DeviceId::new(),
            ts_ms: 1,
            event_type: EventType::parse("code_used").unwrap(),
            // A value whose text (`7.5`) cannot occur in the random ids'
            // hex (`42` did, in about one run in five).
            value: Some(7.5),
            unit: Some("secret-unit".into()),
            metadata: None,
            source: None,
        };
        let shown = format!("{e:?}");
        assert!(
            !shown.contains("secret-unit") && !shown.contains("7.5"),
            "{shown}"
        );
    }
}
