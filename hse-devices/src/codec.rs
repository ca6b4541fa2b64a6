//! The device wire protocol, version 1 (`docs/PROTOCOL.md`): frames in and out.
//!
//! [`decode`] turns one line (TCP) or text message (WebSocket) into an
//! [`Inbound`] frame with every field validated, or a [`Rejection`] that
//! says which `error` or `nack` frame to answer with:
//!
//! | input | answer |
//! |---|---|
//! | longer than [`MAX_FRAME_BYTES`] (256 KiB) | `error frame_too_large` (connection closed) |
//! | not UTF-8 JSON, not an object, nesting past 128 levels | `error malformed` |
//! | unknown or missing `type` | `error unknown_type` |
//! | `hello`/`command_result` with a bad field, event frame without a valid `seq` | `error invalid` |
//! | more than [`MAX_EVENTS_PER_FRAME`] (1,000) events, or an event field invalid: see [`EventDraft::new`] (type, unit over 20 characters or with NUL, value not finite, e.g. `1e309`, metadata over 4 KiB, nested past 8 levels or with NUL in a key or string) | `nack invalid` |
//! | `ts_ms` more than 5 minutes ahead or past retention | `nack out_of_range` |
//!
//! The two frame limits fit each other: 1,000 typical events (UUID
//! `event_id`, type, value, unit, `ts_ms`) are about 135 KB, well under
//! 256 KiB. A number beyond `f64`'s range is refused for its frame's `seq`
//! (see `nonfinite`), like any other invalid field.
//!
//! Messages name the field and the rule, never the offending value.

use hse_core::{DeviceId, Secret};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ErrorCode, Invalid};

mod draft;
mod nonfinite;

pub use draft::{
    EARLIEST_STORABLE_MS, EventDraft, EventFields, FUTURE_TOLERANCE_MS, MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH, MAX_UNIT_CHARS, Metadata, Origin, Refused,
};

/// Largest accepted frame, without its line terminator: 256 KiB, room for
/// [`MAX_EVENTS_PER_FRAME`] typical events (a UUID `event_id`, type,
/// value, unit and `ts_ms` take about 135 bytes each, 135 KB for 1,000).
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
/// Most events in one `events` frame.
pub const MAX_EVENTS_PER_FRAME: usize = 1000;
/// Longest `token` in a hello.
pub const MAX_TOKEN_CHARS: usize = 512;
/// Longest `message` in a command result.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// The protocol version this codec speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// What decoding needs to know about time.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Server time, Unix milliseconds.
    pub now_ms: i64,
    /// Oldest accepted event, as an age in milliseconds.
    pub retention_ms: i64,
}

/// A `hello` frame.
#[derive(Debug)]
pub struct Hello {
    /// The device's id.
    pub device_id: DeviceId,
    /// Its secret (redacted in `Debug`).
    pub token: Secret,
    /// The protocol version it speaks.
    pub protocol: u64,
}

/// A device's answer to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandResult {
    /// The command it answers.
    pub request_id: Uuid,
    /// Whether the device carried it out.
    pub success: bool,
    /// The device's message.
    pub message: String,
}

/// A frame from a device.
#[derive(Debug)]
pub enum Inbound {
    /// Opens the session.
    Hello(Hello),
    /// One (`event`) or more (`events`) events under one sequence number.
    Events {
        /// The frame's sequence number.
        seq: u64,
        /// The events, in order.
        events: Vec<EventDraft>,
    },
    /// Heartbeat.
    Ping,
    /// The answer to a command.
    CommandResult(CommandResult),
}

/// Why a frame was refused, and how to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Answer with an `error` frame (counts as a bad frame).
    Error {
        /// The code.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
    /// Answer with a `nack` for this sequence number.
    Nack {
        /// The refused frame.
        seq: u64,
        /// The code.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
}

impl Rejection {
    fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

/// A frame to a device.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outbound {
    /// The hello was accepted.
    Welcome {
        /// This session's id.
        session_id: Uuid,
        /// Server time, Unix milliseconds.
        server_time_ms: i64,
        /// Expected heartbeat interval.
        heartbeat_s: u64,
    },
    /// Something was refused.
    Error {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable reason.
        message: String,
    },
    /// The frame `seq` (or, with `upto`, every frame since the previous
    /// answer up to `seq`) is durably enqueued.
    Ack {
        /// The acknowledged frame.
        seq: u64,
        /// Acknowledges all unanswered frames up to `seq`.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        upto: bool,
    },
    /// The frame `seq` was refused: none of its events were enqueued, except
    /// with `outcome_unknown`, where they may have been (resend the frame).
    Nack {
        /// The refused frame.
        seq: u64,
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable reason.
        message: String,
        /// With `overloaded`, `unavailable` and `outcome_unknown`: how long
        /// to wait before sending again, in milliseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Answer to `ping`.
    Pong {
        /// Server time, Unix milliseconds.
        server_time_ms: i64,
    },
    /// A command for the device.
    Command {
        /// Echoed back in the device's `command_result`.
        request_id: Uuid,
        /// `program_code`, `remove_code`, `unlock`, `set_state`, `reboot`, ...
        command_type: String,
        /// Command parameters.
        params: Map<String, Value>,
    },
}

impl Outbound {
    /// An `error` frame.
    #[must_use]
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code: code.as_str(),
            message: message.into(),
        }
    }
}

/// Serializes a frame as one line of JSON, without the terminator.
#[must_use]
pub fn encode(frame: &Outbound) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| {
        r#"{"type":"error","code":"internal","message":"unencodable frame"}"#.to_owned()
    })
}

/// Decodes and validates one frame.
///
/// # Errors
/// A [`Rejection`] naming the `error` or `nack` frame to answer with (see
/// the module docs for the table).
pub fn decode(line: &[u8], limits: &Limits) -> Result<Inbound, Rejection> {
    if line.len() > MAX_FRAME_BYTES {
        return Err(Rejection::error(ErrorCode::FrameTooLarge, FRAME_TOO_LARGE));
    }
    let object = parse_object(line)?;
    let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "hello" => decode_hello(&object).map(Inbound::Hello),
        "event" => decode_event_frame(&object, limits),
        "events" => decode_events_frame(&object, limits),
        "ping" => Ok(Inbound::Ping),
        "command_result" => decode_command_result(&object).map(Inbound::CommandResult),
        _ => Err(Rejection::error(
            ErrorCode::UnknownType,
            "unknown or missing frame type",
        )),
    }
}

/// The message of `error frame_too_large`.
pub const FRAME_TOO_LARGE: &str = "frame larger than 256 KiB";

fn parse_object(line: &[u8]) -> Result<Map<String, Value>, Rejection> {
    let parsed = match serde_json::from_slice::<Value>(line) {
        // A number past f64's range fails the whole parse; the frame is
        // parsed again with such numbers marked, so its `seq` is known and
        // the device gets a `nack invalid` for it.
        Err(e) if e.to_string().contains("number out of range") => {
            nonfinite::mark(line).map_or(Err(e), |marked| serde_json::from_slice(&marked))
        }
        other => other,
    };
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Rejection::error(
            ErrorCode::Malformed,
            "frame is not a JSON object",
        )),
        Err(e) if e.to_string().contains("recursion limit") => Err(Rejection::error(
            ErrorCode::Malformed,
            "JSON nested too deeply",
        )),
        Err(_) => Err(Rejection::error(
            ErrorCode::Malformed,
            "frame is not valid UTF-8 JSON",
        )),
    }
}

fn invalid_error(e: Invalid) -> Rejection {
    Rejection::error(ErrorCode::Invalid, e.to_string())
}

fn decode_hello(object: &Map<String, Value>) -> Result<Hello, Rejection> {
    let device_id = required_uuid(object, "device_id").map_err(invalid_error)?;
    let token = optional_str(object, "token", MAX_TOKEN_CHARS)
        .map_err(invalid_error)?
        .ok_or_else(|| invalid_error(Invalid::new("token", "is required")))?;
    let protocol = match object.get("protocol") {
        None => PROTOCOL_VERSION,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid_error(Invalid::new("protocol", "must be an integer")))?,
    };
    Ok(Hello {
        device_id: DeviceId::from(device_id),
        token: Secret::from_presented(&token),
        protocol,
    })
}

fn decode_command_result(object: &Map<String, Value>) -> Result<CommandResult, Rejection> {
    let request_id = required_uuid(object, "request_id").map_err(invalid_error)?;
    let success = object
        .get("success")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid_error(Invalid::new("success", "must be a boolean")))?;
    let message = optional_str(object, "message", MAX_MESSAGE_CHARS)
        .map_err(invalid_error)?
        .unwrap_or_default();
    Ok(CommandResult {
        request_id,
        success,
        message,
    })
}

fn frame_seq(object: &Map<String, Value>) -> Result<u64, Rejection> {
    object
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid_error(Invalid::new("seq", "must be a non-negative integer")))
}

fn nack(seq: u64) -> impl Fn(Refused) -> Rejection {
    move |refused| Rejection::Nack {
        seq,
        code: refused.code,
        message: refused.message,
    }
}

fn decode_event_frame(object: &Map<String, Value>, limits: &Limits) -> Result<Inbound, Rejection> {
    let seq = frame_seq(object)?;
    let draft = decode_draft(object, limits).map_err(nack(seq))?;
    Ok(Inbound::Events {
        seq,
        events: vec![draft],
    })
}

fn decode_events_frame(object: &Map<String, Value>, limits: &Limits) -> Result<Inbound, Rejection> {
    let seq = frame_seq(object)?;
    let list = object
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| nack(seq)(Invalid::new("events", "must be an array").into()))?;
    if list.is_empty() || list.len() > MAX_EVENTS_PER_FRAME {
        return Err(nack(seq)(
            Invalid::new("events", "must hold 1-1000 events").into(),
        ));
    }
    let events = list
        .iter()
        .map(|item| match item {
            Value::Object(map) => decode_draft(map, limits),
            _ => Err(Invalid::new("events", "every event must be an object").into()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(nack(seq))?;
    Ok(Inbound::Events { seq, events })
}

fn decode_draft(object: &Map<String, Value>, limits: &Limits) -> Result<EventDraft, Refused> {
    let event_type = object
        .get("event_type")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new("event_type", "is required"))?;
    let event_id = match object.get("event_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(Invalid::new("event_id", "must be a UUID string").into()),
    };
    let fields = EventFields {
        event_id,
        ts_ms: timestamp(object)?,
        event_type,
        value: value(object)?,
        unit: optional_str(object, "unit", usize::MAX)?,
        metadata: object.get("metadata").map(Metadata::Value),
    };
    EventDraft::new(fields, limits)
}

fn timestamp(object: &Map<String, Value>) -> Result<Option<i64>, Invalid> {
    let Some(raw) = object.get("ts_ms").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    raw.as_i64()
        .map(Some)
        .ok_or_else(|| Invalid::new("ts_ms", "must be an integer of Unix milliseconds"))
}

fn value(object: &Map<String, Value>) -> Result<Option<f64>, Invalid> {
    match object.get("value") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(Invalid::new("value", "must be a finite number")),
        },
        Some(_) => Err(Invalid::new("value", "must be a finite number")),
    }
}

fn optional_str(
    object: &Map<String, Value>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, Invalid> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max_chars => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(Invalid::new(
            field,
            format!("longer than {max_chars} characters"),
        )),
        Some(_) => Err(Invalid::new(field, "must be a string")),
    }
}

fn optional_uuid(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Uuid>, Invalid> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| Invalid::new(field, "must be a UUID")),
        Some(_) => Err(Invalid::new(field, "must be a UUID string")),
    }
}

fn required_uuid(object: &Map<String, Value>, field: &'static str) -> Result<Uuid, Invalid> {
    optional_uuid(object, field)?.ok_or_else(|| Invalid::new(field, "is required"))
}

#[cfg(test)]
mod tests;
