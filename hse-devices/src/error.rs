//! The crate's error types.
//!
//! [`Invalid`] is a field-level validation failure (it becomes a `nack` or
//! `error` frame); [`QueueError`], [`SinkError`] and [`DirectoryError`] are
//! the failures of the ports, classified so the caller can act: a transient
//! sink error is retried, a content error isolates the poison event.

use std::fmt;

/// A field that failed validation, with a reason safe to show the device.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct Invalid {
    /// The offending field.
    pub field: &'static str,
    /// Why it was refused (never echoes the value).
    pub reason: String,
}

impl Invalid {
    /// Builds one.
    #[must_use]
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// The queue (Redis Streams or in-process) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The backend could not be reached: nothing was sent, so nothing was
    /// enqueued. The text is for logs.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The write was sent but its answer did not come (timeout, or the
    /// connection broke while waiting): the entries may or may not be in
    /// the queue. The text is for logs.
    #[error("enqueue outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The queue is at capacity; the producer should back off.
    #[error("queue is full")]
    Full,
    /// An entry could not be encoded or decoded.
    #[error("queue entry: {0}")]
    Corrupt(String),
    /// A dead letter to act on does not exist (any more).
    #[error("dead letter not found")]
    NotFound,
}

/// Why storing a batch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Worth retrying as is: connection refused or lost, serialization
    /// failure, deadlock, server shutting down. Never dead-lettered.
    #[error("transient storage failure: {0}")]
    Transient(String),
    /// The batch's content was refused; split it to find the poison event.
    #[error("storage refused the content: {0}")]
    Content(String),
}

impl SinkError {
    /// Whether retrying the same batch may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// The device directory (secrets and statuses) failed.
#[derive(Debug, thiserror::Error)]
#[error("device directory: {0}")]
pub struct DirectoryError(pub String);

/// A reason code carried by `error` and `nack` frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The line is longer than 256 KiB (the connection is closed).
    FrameTooLarge,
    /// The line is not a JSON object.
    Malformed,
    /// The frame's `type` is unknown.
    UnknownType,
    /// A field failed validation.
    Invalid,
    /// A timestamp is in the future or past the retention window.
    OutOfRange,
    /// The first frame was not `hello`.
    HelloRequired,
    /// The hello's secret or device id was refused.
    Unauthorized,
    /// The hello asked for a protocol version this server does not speak.
    UnsupportedProtocol,
    /// A newer connection of the same device took over.
    Replaced,
    /// Storage lags behind (or the queue is full); retry after
    /// `retry_after_ms`. Nothing of the frame was enqueued.
    Overloaded,
    /// The queue is unreachable; retry after `retry_after_ms`. Nothing of
    /// the frame was enqueued.
    Unavailable,
    /// The enqueue was sent but its answer did not come in time: the
    /// frame's events may or may not be stored. Resend it (storage
    /// deduplicates by `event_id`) after `retry_after_ms`.
    OutcomeUnknown,
    /// The server is shutting down.
    ShuttingDown,
    /// Too many bad frames in a row.
    TooManyErrors,
}

impl ErrorCode {
    /// The code as sent on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FrameTooLarge => "frame_too_large",
            Self::Malformed => "malformed",
            Self::UnknownType => "unknown_type",
            Self::Invalid => "invalid",
            Self::OutOfRange => "out_of_range",
            Self::HelloRequired => "hello_required",
            Self::Unauthorized => "unauthorized",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::Replaced => "replaced",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::ShuttingDown => "shutting_down",
            Self::TooManyErrors => "too_many_errors",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
