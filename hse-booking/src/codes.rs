//! The life of a door code on its lock, as pure functions.
//!
//! ```text
//! pending ──claim──> programming ──ack──> active ──(booking over)──> removing ──ack──> removed
//!                         └──rejected──> failed (with a reason)
//! ```
//! A [`DoorCodeRecord`] says what *should* be on the lock; the programmer
//! worker makes it so through the [`LockProgrammer`](crate::lock::LockProgrammer)
//! port, retrying with capped exponential backoff. Every change driven by
//! the booking bumps `version`, so a worker finishing an attempt against an
//! older version cannot overwrite the newer intent.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use hse_core::{AreaId, DeviceId, EstablishmentId};
use serde::{Deserialize, Serialize};

use crate::door_code::DoorCode;
use crate::error::BookingError;
use crate::model::{Booking, BookingId, BookingStatus, DoorCodeId, Owner};
use crate::policy::Grace;

/// Where a code is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CodeState {
    /// Issued, not yet sent to the lock (or to be sent again).
    Pending,
    /// Claimed by a programmer worker.
    Programming,
    /// Acknowledged by the lock.
    Active,
    /// To be removed from the lock.
    Removing,
    /// Removed from the lock.
    Removed,
    /// The lock refused it; see the reason.
    Failed,
}

impl CodeState {
    /// Every state.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Programming,
        Self::Active,
        Self::Removing,
        Self::Removed,
        Self::Failed,
    ];

    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Programming => "programming",
            Self::Active => "active",
            Self::Removing => "removing",
            Self::Removed => "removed",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `state`.
    pub fn parse(value: &str) -> Result<Self, BookingError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| BookingError::invalid("state", format!("unknown code state `{value}`")))
    }

    /// Whether the code may be on the lock: it counts for uniqueness and
    /// for the lock's cap.
    #[must_use]
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Removed | Self::Failed)
    }

    /// Whether the code should end up on the lock.
    #[must_use]
    pub fn is_wanted(self) -> bool {
        matches!(self, Self::Pending | Self::Programming | Self::Active)
    }
}

impl fmt::Display for CodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A door code of a booking on one lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorCodeRecord {
    /// Its id, also the slot id on the lock.
    pub id: DoorCodeId,
    /// The booking (`None` once the booking was deleted).
    pub booking_id: Option<BookingId>,
    /// The booking's organization.
    pub tenancy: Owner,
    /// The lock's establishment.
    pub establishment_id: EstablishmentId,
    /// The booked area the lock is in.
    pub area_id: AreaId,
    /// The lock.
    pub device_id: DeviceId,
    /// The PIN.
    pub code: DoorCode,
    /// Opens at.
    pub valid_from: DateTime<Utc>,
    /// Closes at.
    pub valid_until: DateTime<Utc>,
    /// The grace the validity was computed with.
    pub grace: Grace,
    /// Where it is in its life.
    pub state: CodeState,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Failed attempts since the last change.
    pub attempts: u32,
    /// When the worker should next act on it (`None`: nothing to do).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// How many times it opened the lock.
    pub usage_count: u32,
    /// Removed after this many uses, if set.
    pub max_usages: Option<u32>,
    /// The lock's cap on live codes at overlapping times, as issued; a
    /// reprogrammed window is held to it too.
    pub lock_cap: u32,
    /// Bumped by every booking-driven change.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// When a code for `booking` opens and closes.
#[must_use]
pub fn validity(booking: &Booking, grace: Grace) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        booking.window.check_in() - grace.early,
        booking.window.check_out() + grace.late,
    )
}

/// A new pending code for `booking` on lock `device`, valid for the stay
/// plus `grace`, on a lock that holds at most `lock_cap` overlapping codes.
#[must_use]
pub fn issue(
    booking: &Booking,
    device: DeviceId,
    code: DoorCode,
    grace: Grace,
    lock_cap: u32,
    max_usages: Option<u32>,
    now: DateTime<Utc>,
) -> DoorCodeRecord {
    let (valid_from, valid_until) = validity(booking, grace);
    DoorCodeRecord {
        id: DoorCodeId::new(),
        booking_id: Some(booking.id),
        tenancy: booking.tenancy,
        establishment_id: booking.establishment_id,
        area_id: booking.area_id,
        device_id: device,
        code,
        valid_from,
        valid_until,
        grace,
        state: CodeState::Pending,
        failure_reason: None,
        attempts: 0,
        next_attempt_at: Some(now),
        usage_count: 0,
        max_usages,
        lock_cap,
        version: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Whether a booking in `status` should have codes on its locks.
#[must_use]
pub fn wants_codes(status: BookingStatus) -> bool {
    matches!(status, BookingStatus::Confirmed | BookingStatus::InProgress)
}

/// How `code` must change after its booking became `booking` (`None`: the
/// booking was deleted). Returns `None` when nothing changes.
#[must_use]
pub fn follow_booking(
    code: &DoorCodeRecord,
    booking: Option<&Booking>,
    now: DateTime<Utc>,
) -> Option<DoorCodeRecord> {
    if !code.state.is_wanted() {
        return None;
    }
    let keep = booking.filter(|b| wants_codes(b.status) && b.area_id == code.area_id);
    let Some(booking) = keep else {
        return Some(retarget(code, CodeState::Removing, now));
    };
    let (from, until) = validity(booking, code.grace);
    if (from, until) == (code.valid_from, code.valid_until) {
        return None;
    }
    let mut next = retarget(code, CodeState::Pending, now);
    next.valid_from = from;
    next.valid_until = until;
    Some(next)
}

/// The code marked for removal (e.g. it reached `max_usages`).
#[must_use]
pub fn retire(code: &DoorCodeRecord, now: DateTime<Utc>) -> Option<DoorCodeRecord> {
    code.state
        .is_wanted()
        .then(|| retarget(code, CodeState::Removing, now))
}

fn retarget(code: &DoorCodeRecord, state: CodeState, now: DateTime<Utc>) -> DoorCodeRecord {
    DoorCodeRecord {
        state,
        attempts: 0,
        next_attempt_at: Some(now),
        version: code.version + 1,
        updated_at: now,
        ..code.clone()
    }
}

/// What a programmer attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The lock acknowledged.
    Acknowledged,
    /// The lock could not be reached (offline, timeout): retry later.
    Unreachable,
    /// The lock refused, for a reason: give up.
    Refused(String),
}

/// Retry delay after `attempts` failures: 5 s doubling, capped at 10 min.
#[must_use]
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    Duration::seconds(5 * (1i64 << exp)).min(Duration::minutes(10))
}

/// The code after an attempt on it; the store applies it only if the
/// record's version is still `code.version`.
#[must_use]
pub fn after_attempt(
    code: &DoorCodeRecord,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> DoorCodeRecord {
    let mut next = DoorCodeRecord {
        updated_at: now,
        ..code.clone()
    };
    match attempt {
        Attempt::Acknowledged => {
            next.state = if code.state == CodeState::Removing {
                CodeState::Removed
            } else {
                CodeState::Active
            };
            next.attempts = 0;
            next.next_attempt_at = None;
        }
        Attempt::Unreachable => {
            next.attempts = code.attempts.saturating_add(1);
            next.next_attempt_at = Some(now + backoff(next.attempts));
        }
        Attempt::Refused(reason) => {
            next.state = CodeState::Failed;
            next.failure_reason = Some(reason.clone());
            next.next_attempt_at = None;
        }
    }
    next
}

/// The code after a claim by a worker: pending becomes programming, and
/// the next attempt moves to the end of the lease (so a crashed worker's
/// claim expires).
#[must_use]
pub fn claimed(code: &DoorCodeRecord, now: DateTime<Utc>, lease: Duration) -> DoorCodeRecord {
    let state = match code.state {
        CodeState::Pending => CodeState::Programming,
        other => other,
    };
    DoorCodeRecord {
        state,
        next_attempt_at: Some(now + lease),
        ..code.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::seconds(5));
        assert_eq!(backoff(2), Duration::seconds(10));
        assert_eq!(backoff(4), Duration::seconds(40));
        assert_eq!(backoff(30), Duration::minutes(10));
    }

    #[test]
    fn live_and_wanted_states() {
        let live: Vec<_> = CodeState::ALL.into_iter().filter(|s| s.is_live()).collect();
        assert_eq!(
            live,
            [
                CodeState::Pending,
                CodeState::Programming,
                CodeState::Active,
                CodeState::Removing
            ]
        );
        assert!(!CodeState::Removing.is_wanted());
    }
}
