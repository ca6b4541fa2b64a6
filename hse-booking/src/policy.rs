//! Per-establishment and per-lock settings, read from their `metadata`.
//!
//! An establishment's `metadata.booking` object may set
//! `check_in_time` / `check_out_time` (`"HH:MM"`, defaults 15:00 / 11:00),
//! `after_checkout_buffer_minutes` / `before_checkin_buffer_minutes`
//! (defaults 60 / 30) and `code_early_grace_minutes` /
//! `code_late_grace_minutes` (defaults 30 / 30). A lock device's
//! `metadata` may set `code_length` (4–8, default 6) and
//! `max_active_codes` (default 5). Absent keys take the defaults; present
//! but malformed ones are refused, naming the key.

use chrono::{Duration, NaiveTime};
use hse_core::value::Metadata;
use serde_json::Value;

use crate::door_code::CodeLength;
use crate::error::BookingError;
use crate::window::{StayTimes, Turnover};

/// How early a code opens before check-in and how long it keeps working
/// after check-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grace {
    /// Before check-in.
    pub early: Duration,
    /// After check-out.
    pub late: Duration,
}

impl Default for Grace {
    fn default() -> Self {
        Self {
            early: Duration::minutes(30),
            late: Duration::minutes(30),
        }
    }
}

/// The booking rules of one establishment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookingPolicy {
    /// Default local check-in/check-out times.
    pub stay_times: StayTimes,
    /// The gap between stays.
    pub turnover: Turnover,
    /// Door-code validity around the stay.
    pub grace: Grace,
}

impl BookingPolicy {
    /// Reads the policy from an establishment's metadata.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming the malformed key.
    pub fn from_metadata(metadata: &Metadata) -> Result<Self, BookingError> {
        let Some(Value::Object(b)) = metadata.as_map().get("booking") else {
            return Ok(Self::default());
        };
        let d = Self::default();
        let minutes = |key, default: Duration| -> Result<Duration, BookingError> {
            b.get(key).map_or(Ok(default), |v| minutes_value(key, v))
        };
        let time = |key, default| b.get(key).map_or(Ok(default), |v| time_value(key, v));
        Ok(Self {
            stay_times: StayTimes {
                check_in: time("check_in_time", d.stay_times.check_in)?,
                check_out: time("check_out_time", d.stay_times.check_out)?,
            },
            turnover: Turnover {
                after_checkout: minutes(
                    "after_checkout_buffer_minutes",
                    d.turnover.after_checkout,
                )?,
                before_checkin: minutes(
                    "before_checkin_buffer_minutes",
                    d.turnover.before_checkin,
                )?,
            },
            grace: Grace {
                early: minutes("code_early_grace_minutes", d.grace.early)?,
                late: minutes("code_late_grace_minutes", d.grace.late)?,
            },
        })
    }
}

fn minutes_value(key: &'static str, v: &Value) -> Result<Duration, BookingError> {
    v.as_u64()
        .filter(|m| *m <= 7 * 24 * 60)
        .and_then(|m| i64::try_from(m).ok())
        .map(Duration::minutes)
        .ok_or_else(|| BookingError::invalid(key, "must be whole minutes, at most a week"))
}

fn time_value(key: &'static str, v: &Value) -> Result<NaiveTime, BookingError> {
    v.as_str()
        .and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok())
        .ok_or_else(|| BookingError::invalid(key, "must be a local time \"HH:MM\""))
}

/// The code settings of one lock model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockSettings {
    /// Digits per code.
    pub code_length: CodeLength,
    /// How many codes may be valid on the lock at overlapping times.
    pub max_active_codes: u32,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            code_length: CodeLength::default(),
            max_active_codes: 5,
        }
    }
}

impl LockSettings {
    /// Reads the settings from a lock device's metadata.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming the malformed key.
    pub fn from_metadata(metadata: &Metadata) -> Result<Self, BookingError> {
        let m = metadata.as_map();
        let d = Self::default();
        let code_length = match m.get("code_length") {
            None => d.code_length,
            Some(v) => CodeLength::new(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0),
            )?,
        };
        let max_active_codes = match m.get("max_active_codes") {
            None => d.max_active_codes,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| BookingError::invalid("max_active_codes", "must be 1-1000"))?,
        };
        Ok(Self {
            code_length,
            max_active_codes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_default_and_read_overrides() {
        let empty = Metadata::default();
        assert_eq!(
            BookingPolicy::from_metadata(&empty).unwrap(),
            BookingPolicy::default()
        );
        let m = Metadata::parse(json!({"booking": {
            "check_in_time": "14:30", "after_checkout_buffer_minutes": 90
        }}))
        .unwrap();
        let p = BookingPolicy::from_metadata(&m).unwrap();
        assert_eq!(
            p.stay_times.check_in,
            NaiveTime::from_hms_opt(14, 30, 0).unwrap()
        );
        assert_eq!(p.turnover.gap(), Duration::minutes(90));
        let bad = Metadata::parse(json!({"booking": {"check_in_time": "3pm"}})).unwrap();
        assert!(BookingPolicy::from_metadata(&bad).is_err());
    }

    #[test]
    fn lock_settings_are_bounded() {
        let m = Metadata::parse(json!({"code_length": 8, "max_active_codes": 3})).unwrap();
        let s = LockSettings::from_metadata(&m).unwrap();
        assert_eq!((s.code_length.get(), s.max_active_codes), (8, 3));
        let bad = Metadata::parse(json!({"code_length": 12})).unwrap();
        assert!(LockSettings::from_metadata(&bad).is_err());
    }
}
