//! The one validated event constructor: every protocol adapter (TCP and
//! WebSocket frames through [`super::decode`], gRPC's `NotifyDeviceEvents`)
//! builds its events with [`EventDraft::new`], so what one transport
//! refuses every transport refuses.
//!
//! The rules are those of `device_events` (hse-devices/migrations) plus the
//! protocol's limits, so an event accepted here can always be stored:
//!
//! | field | rule | column |
//! |---|---|---|
//! | `event_type` | 1–50 characters of `[a-z0-9_.-]` | `text`, `length BETWEEN 1 AND 50` |
//! | `value` | a finite number | `double precision` |
//! | `unit` | at most [`MAX_UNIT_CHARS`] characters, no NUL (U+0000) | `text`, `length <= 20` |
//! | `metadata` | an object, at most [`MAX_METADATA_BYTES`] serialized, nested at most [`MAX_METADATA_DEPTH`] levels, no NUL in any key or string | `jsonb` object |
//! | `ts_ms` | at most 5 minutes ahead, within retention, within PostgreSQL's `timestamptz` range | `timestamptz` |
//! | `event_id` | a UUID (parsed here from the text sent) | `uuid` |
//!
//! PostgreSQL refuses a NUL character in `text` (SQLSTATE 22021) and in
//! `jsonb` strings (22P05); before this check such an event was acked and
//! then dead-lettered for good. Messages name the field and the rule,
//! never the value.

use hse_core::DeviceId;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ErrorCode, Invalid};
use crate::model::{Event, EventType, derived_event_id};

use super::Limits;

/// Longest `unit`.
pub const MAX_UNIT_CHARS: usize = 20;
/// Largest `metadata` object, serialized.
pub const MAX_METADATA_BYTES: usize = 4 * 1024;
/// Deepest nesting inside `metadata` (the object itself is level 1).
pub const MAX_METADATA_DEPTH: usize = 8;
/// How far in the future a device clock may be.
pub const FUTURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;
/// The earliest time PostgreSQL's `timestamptz` holds (4713-11-24 BC,
/// 00:00 UTC), in Unix milliseconds.
pub const EARLIEST_STORABLE_MS: i64 = -210_866_803_200_000;

/// An event's fields as a protocol adapter received them, typed as the
/// transport types them (JSON values, protobuf strings) but not yet
/// validated: the `event_id` text and the metadata are parsed here too, so
/// no transport parses or checks a field on its own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFields<'a> {
    /// The device's idempotency key as sent, if it sent one.
    pub event_id: Option<&'a str>,
    /// Device time; `None` means server time.
    pub ts_ms: Option<i64>,
    /// What happened.
    pub event_type: &'a str,
    /// A measurement.
    pub value: Option<f64>,
    /// Its unit.
    pub unit: Option<String>,
    /// The metadata as sent, if any.
    pub metadata: Option<Metadata<'a>>,
}

/// `metadata` as a transport received it.
#[derive(Clone, Debug, PartialEq)]
pub enum Metadata<'a> {
    /// A JSON value of a frame (`null` is no metadata).
    Value(&'a Value),
    /// JSON text (gRPC's `metadata_json`; `null` is no metadata).
    Json(&'a str),
}

/// Why a draft was refused: `invalid` or `out_of_range`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The `nack` code: [`ErrorCode::Invalid`] or [`ErrorCode::OutOfRange`].
    pub code: ErrorCode,
    /// Names the field and the rule.
    pub message: String,
}

impl From<Invalid> for Refused {
    fn from(e: Invalid) -> Self {
        Self {
            code: ErrorCode::Invalid,
            message: e.to_string(),
        }
    }
}

/// An event as sent, validated, before it gets its id and time. Built only
/// by [`EventDraft::new`], and read-only after: an invalid draft cannot be
/// made or made up.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    event_id: Option<Uuid>,
    ts_ms: Option<i64>,
    event_type: EventType,
    value: Option<f64>,
    unit: Option<String>,
    metadata: Option<Map<String, Value>>,
}

/// Where a draft came from, to complete it into an [`Event`].
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The sending device.
    pub device_id: DeviceId,
    /// Its session.
    pub session_id: Uuid,
    /// The frame's sequence number.
    pub seq: u64,
    /// Server time, Unix milliseconds.
    pub now_ms: i64,
    /// The protocol name stored as the event's source.
    pub source: &'a str,
}

impl EventDraft {
    /// Validates `fields` against the table in the module docs.
    ///
    /// # Errors
    /// [`Refused`] with `out_of_range` for a time outside the accepted
    /// window, else `invalid` naming the field.
    pub fn new(fields: EventFields<'_>, limits: &Limits) -> Result<Self, Refused> {
        let event_id = fields.event_id.map(parse_event_id).transpose()?;
        let event_type = EventType::parse(fields.event_type)?;
        if fields.value.is_some_and(|v| !v.is_finite()) {
            return Err(Invalid::new("value", "must be a finite number").into());
        }
        if let Some(unit) = &fields.unit {
            check_unit(unit)?;
        }
        let metadata = fields.metadata.map(parse_metadata).transpose()?.flatten();
        if let Some(metadata) = &metadata {
            check_metadata(metadata)?;
        }
        if let Some(ts) = fields.ts_ms {
            check_time(ts, limits)?;
        }
        Ok(Self {
            event_id,
            ts_ms: fields.ts_ms,
            event_type,
            value: fields.value,
            unit: fields.unit,
            metadata,
        })
    }

    /// The device's idempotency key, if it sent one.
    #[must_use]
    pub fn event_id(&self) -> Option<Uuid> {
        self.event_id
    }

    /// Device time; `None` means server time.
    #[must_use]
    pub fn ts_ms(&self) -> Option<i64> {
        self.ts_ms
    }

    /// What happened.
    #[must_use]
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }

    /// A finite value.
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// Its unit, at most [`MAX_UNIT_CHARS`] characters.
    #[must_use]
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// A JSON object of at most [`MAX_METADATA_BYTES`].
    #[must_use]
    pub fn metadata(&self) -> Option<&Map<String, Value>> {
        self.metadata.as_ref()
    }

    /// The complete event: the device's id or a derived one, the device's
    /// time or the server's.
    #[must_use]
    pub fn into_event(self, origin: Origin<'_>, index: usize) -> Event {
        let event_id = self.event_id.unwrap_or_else(|| {
            derived_event_id(origin.device_id, origin.session_id, origin.seq, index)
        });
        Event {
            event_id,
            device_id: origin.device_id,
            ts_ms: self.ts_ms.unwrap_or(origin.now_ms),
            event_type: self.event_type,
            value: self.value,
            unit: self.unit,
            metadata: self.metadata,
            source: Some(origin.source.to_owned()),
        }
    }
}

fn parse_event_id(text: &str) -> Result<Uuid, Invalid> {
    Uuid::parse_str(text).map_err(|_| Invalid::new("event_id", "must be a UUID"))
}

/// The metadata object, `None` for JSON `null`.
fn parse_metadata(metadata: Metadata<'_>) -> Result<Option<Map<String, Value>>, Invalid> {
    let not_object = || Invalid::new("metadata", "must be a JSON object");
    let finite = || Invalid::new("metadata", "numbers must be finite");
    match metadata {
        Metadata::Value(Value::Null) => Ok(None),
        Metadata::Value(Value::Object(map)) if super::nonfinite::marked(map) => Err(finite()),
        Metadata::Value(Value::Object(map)) => Ok(Some(map.clone())),
        Metadata::Value(_) => Err(not_object()),
        Metadata::Json(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Null) => Ok(None),
            Ok(Value::Object(map)) => Ok(Some(map)),
            Err(e) if e.to_string().contains("number out of range") => Err(finite()),
            _ => Err(not_object()),
        },
    }
}

fn check_unit(unit: &str) -> Result<(), Invalid> {
    if unit.chars().count() > MAX_UNIT_CHARS {
        return Err(Invalid::new(
            "unit",
            format!("longer than {MAX_UNIT_CHARS} characters"),
        ));
    }
    if unit.contains('\0') {
        return Err(Invalid::new("unit", "must not contain NUL (U+0000)"));
    }
    Ok(())
}

fn check_metadata(metadata: &Map<String, Value>) -> Result<(), Invalid> {
    if 1 + metadata.values().map(depth).max().unwrap_or(0) > MAX_METADATA_DEPTH {
        return Err(Invalid::new("metadata", "nested deeper than 8 levels"));
    }
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
    if size > MAX_METADATA_BYTES {
        return Err(Invalid::new("metadata", "larger than 4 KiB"));
    }
    if metadata.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        return Err(Invalid::new(
            "metadata",
            "keys and strings must not contain NUL (U+0000)",
        ));
    }
    Ok(())
}

/// Nesting depth of a JSON value: scalars are 0, `{}` is 1.
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(list) => 1 + list.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Whether a NUL character occurs in any key or string of `value`.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(list) => list.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn check_time(ts: i64, limits: &Limits) -> Result<(), Refused> {
    let newest = limits.now_ms.saturating_add(FUTURE_TOLERANCE_MS);
    let oldest = limits
        .now_ms
        .saturating_sub(limits.retention_ms)
        .max(EARLIEST_STORABLE_MS);
    if ts > newest || ts < oldest {
        return Err(Refused {
            code: ErrorCode::OutOfRange,
            message: "ts_ms is more than 5 minutes ahead or older than the retention window"
                .to_owned(),
        });
    }
    Ok(())
}
