//! The booking state machine, as pure functions.
//!
//! ```text
//! pending ──confirm──> confirmed ──check_in──> in-progress ──check_out──> completed
//!    └──────cancel──────┴──> cancelled
//! ```
//! Modify and delete are allowed only while pending or confirmed. Every
//! refusal is an [`IllegalTransition`] naming the current state.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::BookingStatus;

/// Something that may change, or act on, a booking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingAction {
    /// The guest confirms: pending → confirmed.
    Confirm,
    /// Automatic check-in: confirmed → in-progress.
    CheckIn,
    /// Automatic check-out: in-progress → completed.
    CheckOut,
    /// Cancel: pending or confirmed → cancelled.
    Cancel,
    /// Change dates, area or guests (state unchanged).
    Modify,
    /// Hard delete.
    Delete,
}

impl BookingAction {
    /// Every action, for exhaustive tests.
    pub const ALL: [Self; 6] = [
        Self::Confirm,
        Self::CheckIn,
        Self::CheckOut,
        Self::Cancel,
        Self::Modify,
        Self::Delete,
    ];

    /// The action's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::CheckIn => "check_in",
            Self::CheckOut => "check_out",
            Self::Cancel => "cancel",
            Self::Modify => "modify",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for BookingAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action is not allowed in the booking's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("cannot {action} a booking that is {from}")]
pub struct IllegalTransition {
    /// The booking's current state.
    pub from: BookingStatus,
    /// What was attempted.
    pub action: BookingAction,
}

/// The state a booking in `from` reaches by `action` (`Modify` and `Delete`
/// keep the state: for them this only checks they are allowed).
///
/// # Errors
/// [`IllegalTransition`] naming `from` when the action is not allowed.
pub fn next(
    from: BookingStatus,
    action: BookingAction,
) -> Result<BookingStatus, IllegalTransition> {
    use BookingAction as A;
    use BookingStatus as S;
    match (from, action) {
        (S::Pending, A::Confirm) => Ok(S::Confirmed),
        (S::Confirmed, A::CheckIn) => Ok(S::InProgress),
        (S::InProgress, A::CheckOut) => Ok(S::Completed),
        (S::Pending | S::Confirmed, A::Cancel) => Ok(S::Cancelled),
        (S::Pending | S::Confirmed, A::Modify | A::Delete) => Ok(from),
        _ => Err(IllegalTransition { from, action }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BookingAction as A;
    use BookingStatus as S;

    /// The whole table: every state × every action, allowed or refused.
    #[test]
    fn every_transition_allowed_and_refused_matches_the_table() {
        let table: [(S, A, Option<S>); 30] = [
            (S::Pending, A::Confirm, Some(S::Confirmed)),
            (S::Pending, A::CheckIn, None),
            (S::Pending, A::CheckOut, None),
            (S::Pending, A::Cancel, Some(S::Cancelled)),
            (S::Pending, A::Modify, Some(S::Pending)),
            (S::Pending, A::Delete, Some(S::Pending)),
            (S::Confirmed, A::Confirm, None),
            (S::Confirmed, A::CheckIn, Some(S::InProgress)),
            (S::Confirmed, A::CheckOut, None),
            (S::Confirmed, A::Cancel, Some(S::Cancelled)),
            (S::Confirmed, A::Modify, Some(S::Confirmed)),
            (S::Confirmed, A::Delete, Some(S::Confirmed)),
            (S::InProgress, A::Confirm, None),
            (S::InProgress, A::CheckIn, None),
            (S::InProgress, A::CheckOut, Some(S::Completed)),
            (S::InProgress, A::Cancel, None),
            (S::InProgress, A::Modify, None),
            (S::InProgress, A::Delete, None),
            (S::Completed, A::Confirm, None),
            (S::Completed, A::CheckIn, None),
            (S::Completed, A::CheckOut, None),
            (S::Completed, A::Cancel, None),
            (S::Completed, A::Modify, None),
            (S::Completed, A::Delete, None),
            (S::Cancelled, A::Confirm, None),
            (S::Cancelled, A::CheckIn, None),
            (S::Cancelled, A::CheckOut, None),
            (S::Cancelled, A::Cancel, None),
            (S::Cancelled, A::Modify, None),
            (S::Cancelled, A::Delete, None),
        ];
        for (from, action, expected) in table {
            let got = next(from, action);
            match expected {
                Some(to) => assert_eq!(got, Ok(to), "{from} {action}"),
                None => assert_eq!(
                    got,
                    Err(IllegalTransition { from, action }),
                    "{from} {action}"
                ),
            }
        }
        let covered: std::collections::BTreeSet<_> = table
            .iter()
            .map(|(s, a, _)| (s.as_str(), a.as_str()))
            .collect();
        assert_eq!(covered.len(), S::ALL.len() * A::ALL.len());
    }

    #[test]
    fn a_refusal_names_the_current_state() {
        let err = next(S::InProgress, A::Cancel).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot cancel a booking that is in-progress"
        );
    }
}
