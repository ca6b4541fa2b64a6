//! Integrity violations, mapped where the query is made: `23P01` on
//! `bookings_no_overlap` → overlap, on `door_codes_unique_per_lock` → code
//! collision, `23505` → already exists, `23503` → not found, `23514` →
//! invalid. A data exception (class `22`, e.g. a NUL character in a guest's
//! metadata) is invalid too, through `From<sqlx::Error> for BookingError`.
//! A deadlock (`40P01`: two concurrent inserts that overlap each wait on the
//! other's index entry of the exclusion constraint, and PostgreSQL aborts
//! one) or a serialization failure (`40001`) rolled the whole transaction
//! back, so the write is simply run again.

use crate::error::BookingError;

/// What a failed write broke.
pub(super) enum Broke {
    BookingOverlap,
    CodeClash,
    Unique(String),
    ForeignKey(String),
    Check(String),
    Retry,
    Other,
}

pub(super) fn broke(e: &sqlx::Error) -> Broke {
    let Some(db) = e.as_database_error() else {
        return Broke::Other;
    };
    let constraint = db.constraint().unwrap_or_default().to_owned();
    match db.code().as_deref() {
        Some("23P01") if constraint == "door_codes_unique_per_lock" => Broke::CodeClash,
        Some("23P01") => Broke::BookingOverlap,
        Some("23505") => Broke::Unique(constraint),
        Some("23503") => Broke::ForeignKey(constraint),
        Some("23514") => Broke::Check(constraint),
        Some("40P01" | "40001") => Broke::Retry,
        _ => Broke::Other,
    }
}

/// Maps a write failure other than a booking overlap.
pub(super) fn on_write(e: sqlx::Error) -> BookingError {
    match broke(&e) {
        Broke::CodeClash => BookingError::AlreadyExists {
            entity: "door_code",
        },
        Broke::Unique(c) if c.contains("confirmation_code") => BookingError::AlreadyExists {
            entity: "confirmation_code",
        },
        Broke::Unique(c) if c.starts_with("guest_companions") => BookingError::AlreadyExists {
            entity: "companion",
        },
        Broke::Unique(_) => BookingError::AlreadyExists { entity: "row" },
        Broke::ForeignKey(c) if c.contains("guest") => BookingError::not_found("guest"),
        Broke::ForeignKey(c) if c.contains("device") => BookingError::not_found("device"),
        Broke::ForeignKey(_) => BookingError::not_found("area"),
        Broke::Check(c) => BookingError::invalid("booking", format!("violates {c}")),
        Broke::BookingOverlap | Broke::Retry | Broke::Other => BookingError::from(e),
    }
}

/// A write that failed on the overlap constraint, was rolled back to be
/// run again, or failed otherwise.
pub(super) enum WriteError {
    Overlap,
    Retry,
    Other(BookingError),
}

impl From<BookingError> for WriteError {
    fn from(e: BookingError) -> Self {
        Self::Other(e)
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        match broke(&e) {
            Broke::BookingOverlap => Self::Overlap,
            Broke::Retry => Self::Retry,
            _ => Self::Other(on_write(e)),
        }
    }
}

/// How many times a write is run again (its conflicting booking vanished,
/// or PostgreSQL rolled it back as a deadlock victim).
pub(super) const OVERLAP_RETRIES: usize = 8;
