//! When a booking holds its area, as pure functions: the half-open
//! [`BookingWindow`], the [`Turnover`] gap between stays, conflicts, free
//! intervals, and local check-in/check-out times resolved in an IANA zone.
//!
//! A booking *blocks* `[check_in, check_out + gap)`. Two active bookings of
//! one area conflict when their blocked ranges overlap, so the next check-in
//! must be at least `gap` after the previous check-out (e.g.
//! check-out 11:00 → next check-in 12:00 allowed, 11:59 refused).

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::BookingError;

/// A stay: check-in and check-out instants, check-in strictly first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "RawWindow")]
pub struct BookingWindow {
    check_in: DateTime<Utc>,
    check_out: DateTime<Utc>,
}

#[derive(Deserialize)]
struct RawWindow {
    check_in: DateTime<Utc>,
    check_out: DateTime<Utc>,
}

impl TryFrom<RawWindow> for BookingWindow {
    type Error = BookingError;
    fn try_from(raw: RawWindow) -> Result<Self, Self::Error> {
        Self::new(raw.check_in, raw.check_out)
    }
}

impl BookingWindow {
    /// The longest stay accepted.
    pub const MAX_DAYS: i64 = 366;

    /// A window from `check_in` to `check_out`.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `check_in` or `check_out` outside
    /// years 1–9999 (so the turnover gap and code graces can never overflow
    /// the calendar), and naming `check_out` unless it is after `check_in`
    /// and at most [`Self::MAX_DAYS`] later.
    pub fn new(check_in: DateTime<Utc>, check_out: DateTime<Utc>) -> Result<Self, BookingError> {
        if !in_range(check_in) {
            return Err(BookingError::invalid("check_in", "must be in years 1-9999"));
        }
        if !in_range(check_out) {
            return Err(BookingError::invalid(
                "check_out",
                "must be in years 1-9999",
            ));
        }
        if check_out <= check_in {
            return Err(BookingError::invalid("check_out", "must be after check_in"));
        }
        if check_out - check_in > Duration::days(Self::MAX_DAYS) {
            return Err(BookingError::invalid(
                "check_out",
                "stay is longer than 366 days",
            ));
        }
        Ok(Self {
            check_in,
            check_out,
        })
    }

    /// Check-in instant.
    #[must_use]
    pub fn check_in(&self) -> DateTime<Utc> {
        self.check_in
    }

    /// Check-out instant.
    #[must_use]
    pub fn check_out(&self) -> DateTime<Utc> {
        self.check_out
    }

    /// Whether two half-open windows share an instant.
    #[must_use]
    pub fn overlaps(&self, other: &Self) -> bool {
        self.check_in < other.check_out && other.check_in < self.check_out
    }
}

/// The gap between one check-out and the next check-in:
/// `max(after_checkout, before_checkin)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turnover {
    /// Buffer after a check-out (cleaning), default 60 minutes.
    pub after_checkout: Duration,
    /// Buffer before a check-in, default 30 minutes.
    pub before_checkin: Duration,
}

impl Default for Turnover {
    fn default() -> Self {
        Self {
            after_checkout: Duration::minutes(60),
            before_checkin: Duration::minutes(30),
        }
    }
}

impl Turnover {
    /// The required gap.
    #[must_use]
    pub fn gap(&self) -> Duration {
        self.after_checkout.max(self.before_checkin)
    }

    /// The end of the time a stay in `window` holds the area.
    #[must_use]
    pub fn blocked_until(&self, window: &BookingWindow) -> DateTime<Utc> {
        window.check_out + self.gap()
    }
}

/// The range an active booking holds: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Blocked {
    /// Check-in.
    pub start: DateTime<Utc>,
    /// Check-out plus the gap.
    pub end: DateTime<Utc>,
}

impl Blocked {
    /// Whether two blocked ranges overlap (half-open).
    #[must_use]
    pub fn conflicts(&self, other: &Self) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The free intervals of an area within `within`: every stay entirely
/// inside one of them is bookable with gap `gap`, given the `taken` blocked
/// ranges of its active bookings. Sorted, disjoint.
#[must_use]
pub fn free_intervals(
    within: &BookingWindow,
    taken: &[Blocked],
    gap: Duration,
) -> Vec<BookingWindow> {
    // A new stay [s, e) conflicts with b iff s < b.end && b.start < e + gap,
    // i.e. iff it meets [b.start - gap, b.end).
    let mut busy: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        taken.iter().map(|b| (b.start - gap, b.end)).collect();
    busy.sort();
    let mut free = Vec::new();
    let mut cursor = within.check_in;
    for (start, end) in busy {
        if start > cursor && cursor < within.check_out {
            push_window(&mut free, cursor, start.min(within.check_out));
        }
        cursor = cursor.max(end);
    }
    if cursor < within.check_out {
        push_window(&mut free, cursor, within.check_out);
    }
    free
}

fn push_window(out: &mut Vec<BookingWindow>, start: DateTime<Utc>, end: DateTime<Utc>) {
    if let Ok(w) = BookingWindow::new(
        start,
        end.min(start + Duration::days(BookingWindow::MAX_DAYS)),
    ) {
        out.push(w);
    }
}

/// Default local check-in/check-out times of an establishment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StayTimes {
    /// Local check-in time, default 15:00.
    pub check_in: NaiveTime,
    /// Local check-out time, default 11:00.
    pub check_out: NaiveTime,
}

impl Default for StayTimes {
    fn default() -> Self {
        Self {
            check_in: NaiveTime::from_hms_opt(15, 0, 0).unwrap_or(NaiveTime::MIN),
            check_out: NaiveTime::from_hms_opt(11, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl StayTimes {
    /// The window from `arrival` at the check-in time to `departure` at the
    /// check-out time, both local to `tz`.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `check_out` when departure is not
    /// after arrival.
    pub fn resolve(
        &self,
        tz: chrono_tz::Tz,
        arrival: NaiveDate,
        departure: NaiveDate,
    ) -> Result<BookingWindow, BookingError> {
        let check_in = local_instant(tz, arrival, self.check_in)?;
        let check_out = local_instant(tz, departure, self.check_out)?;
        BookingWindow::new(check_in, check_out)
    }
}

/// Whether an instant is inside years 1–9999, where a week either side
/// still is a valid instant.
fn in_range(t: DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// The instant of a local date and time in `tz`. A time skipped by a DST
/// change resolves to the first valid instant after it; a repeated time
/// resolves to its first occurrence.
///
/// # Errors
/// [`BookingError::Invalid`] naming `date` outside years 1–9999, or if no
/// instant exists within a day after (never for real zones).
pub fn local_instant(
    tz: chrono_tz::Tz,
    date: NaiveDate,
    time: NaiveTime,
) -> Result<DateTime<Utc>, BookingError> {
    if !(1..=9999).contains(&date.year()) {
        return Err(BookingError::invalid("date", "must be in years 1-9999"));
    }
    let mut local = date.and_time(time);
    for _ in 0..(24 * 4) {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                return Ok(t.with_timezone(&Utc));
            }
            LocalResult::None => {
                // Inside a DST gap: the wall clock jumped over this time.
                local = minute_floor(local) + Duration::minutes(15);
            }
        }
    }
    Err(BookingError::invalid("date", "no such local time"))
}

fn minute_floor(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window(a: &str, b: &str) -> BookingWindow {
        BookingWindow::new(at(a), at(b)).unwrap()
    }

    fn blocked(w: &BookingWindow) -> Blocked {
        Blocked {
            start: w.check_in(),
            end: Turnover::default().blocked_until(w),
        }
    }

    #[test]
    fn back_to_back_bookings_at_the_gap_are_accepted_and_a_minute_less_refused() {
        let first = blocked(&window("2026-07-01T15:00:00Z", "2026-07-03T11:00:00Z"));
        let at_gap = blocked(&window("2026-07-03T12:00:00Z", "2026-07-04T11:00:00Z"));
        let too_soon = blocked(&window("2026-07-03T11:59:00Z", "2026-07-04T11:00:00Z"));
        assert!(!first.conflicts(&at_gap));
        assert!(first.conflicts(&too_soon));
        // And the other way round: a stay ending just before another starts.
        let before = blocked(&window("2026-06-29T15:00:00Z", "2026-07-01T14:00:00Z"));
        assert!(!before.conflicts(&first));
        let before_late = blocked(&window("2026-06-29T15:00:00Z", "2026-07-01T14:01:00Z"));
        assert!(before_late.conflicts(&first));
    }

    #[test]
    fn the_gap_is_the_larger_buffer() {
        let t = Turnover {
            after_checkout: Duration::minutes(10),
            before_checkin: Duration::minutes(45),
        };
        assert_eq!(t.gap(), Duration::minutes(45));
        assert_eq!(Turnover::default().gap(), Duration::minutes(60));
    }

    #[test]
    fn instants_at_the_ends_of_the_calendar_are_refused_not_overflowed() {
        // The turnover gap after this check-out overflowed chrono (a panic).
        let (late_in, late_out) = (at("+262142-12-30T00:00:00Z"), at("+262142-12-31T23:59:59Z"));
        assert!(BookingWindow::new(late_in, late_out).is_err());
        let (early_in, early_out) = (at("-262143-01-01T00:00:00Z"), at("-262143-01-02T00:00:00Z"));
        assert!(BookingWindow::new(early_in, early_out).is_err());
        let last = NaiveDate::from_ymd_opt(262_142, 12, 31).unwrap();
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let late = NaiveTime::from_hms_opt(23, 30, 0).unwrap();
        assert!(local_instant(tz, last, late).is_err());
        let w = window("9999-12-24T00:00:00Z", "9999-12-31T23:59:59Z");
        assert!(Turnover::default().blocked_until(&w) > w.check_out());
    }

    #[test]
    fn empty_and_reversed_windows_are_refused() {
        assert!(
            BookingWindow::new(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")).is_err()
        );
        assert!(
            BookingWindow::new(at("2026-01-02T00:00:00Z"), at("2026-01-01T00:00:00Z")).is_err()
        );
        assert!(
            BookingWindow::new(at("2026-01-01T00:00:00Z"), at("2028-01-01T00:00:00Z")).is_err()
        );
    }

    #[test]
    fn free_intervals_honour_the_gap_on_both_sides() {
        let taken = [blocked(&window(
            "2026-07-03T15:00:00Z",
            "2026-07-05T11:00:00Z",
        ))];
        let within = window("2026-07-01T00:00:00Z", "2026-07-10T00:00:00Z");
        let free = free_intervals(&within, &taken, Duration::minutes(60));
        assert_eq!(
            free,
            vec![
                window("2026-07-01T00:00:00Z", "2026-07-03T14:00:00Z"),
                window("2026-07-05T12:00:00Z", "2026-07-10T00:00:00Z"),
            ]
        );
        let all = free_intervals(&within, &[], Duration::minutes(60));
        assert_eq!(all, vec![within]);
    }

    #[test]
    fn local_times_resolve_in_the_establishment_zone_across_dst() {
        let madrid = chrono_tz::Europe::Madrid;
        let times = StayTimes::default();
        // Summer (UTC+2) to winter (UTC+1): DST ends 2026-10-25.
        let w = times
            .resolve(
                madrid,
                "2026-10-24".parse().unwrap(),
                "2026-10-26".parse().unwrap(),
            )
            .unwrap();
        assert_eq!(w.check_in(), at("2026-10-24T13:00:00Z"));
        assert_eq!(w.check_out(), at("2026-10-26T10:00:00Z"));
        // Spring forward 2026-03-29: 02:30 does not exist, becomes 03:00 local.
        let skipped = local_instant(
            madrid,
            "2026-03-29".parse().unwrap(),
            NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        )
        .unwrap();
        assert_eq!(skipped, at("2026-03-29T01:00:00Z"));
        // Fall back 2026-10-25: 02:30 happens twice; the first is taken.
        let repeated = local_instant(
            madrid,
            "2026-10-25".parse().unwrap(),
            NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        )
        .unwrap();
        assert_eq!(repeated, at("2026-10-25T00:30:00Z"));
    }
}
