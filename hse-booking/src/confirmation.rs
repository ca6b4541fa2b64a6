//! Confirmation codes: short, unique, unambiguous (no 0/O, 1/I).
//!
//! Eight characters from a 32-symbol alphabet (40 bits), drawn from the OS
//! RNG. Uniqueness is a database constraint; the service redraws on the
//! rare collision.

use std::fmt;

use rand::rngs::{StdRng, SysRng};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::BookingError;

/// The symbols: digits 2–9 and A–Z without I and O.
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// The code's length.
pub const LENGTH: usize = 8;

/// A booking's confirmation code, e.g. `K7M2QX9D`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct ConfirmationCode(String);

impl ConfirmationCode {
    /// A fresh random code.
    ///
    /// # Errors
    /// [`BookingError::Random`] if the OS RNG fails.
    pub fn generate() -> Result<Self, BookingError> {
        let mut rng = StdRng::try_from_rng(&mut SysRng)
            .map_err(|e| BookingError::Random(format!("OS random generator: {e}")))?;
        let code = (0..LENGTH)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Ok(Self(code))
    }

    /// Parses a code typed by a person (case-insensitive).
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `confirmation_code`.
    pub fn parse(value: &str) -> Result<Self, BookingError> {
        let upper = value.trim().to_ascii_uppercase();
        if upper.len() == LENGTH && upper.bytes().all(|b| ALPHABET.contains(&b)) {
            Ok(Self(upper))
        } else {
            Err(BookingError::invalid(
                "confirmation_code",
                "must be 8 characters of 2-9 and A-Z without I and O",
            ))
        }
    }

    /// The code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConfirmationCode {
    type Error = BookingError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ConfirmationCode> for String {
    fn from(value: ConfirmationCode) -> Self {
        value.0
    }
}

impl fmt::Display for ConfirmationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_codes_avoid_ambiguous_symbols() {
        for _ in 0..2_000 {
            let code = ConfirmationCode::generate().unwrap();
            assert_eq!(code.as_str().len(), LENGTH);
            assert!(!code.as_str().contains(['0', 'O', '1', 'I']));
            assert_eq!(
                ConfirmationCode::parse(&code.as_str().to_lowercase()).unwrap(),
                code
            );
        }
        assert!(ConfirmationCode::parse("ABCDEFG0").is_err());
    }
}
