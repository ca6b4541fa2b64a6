//! Door-lock PINs, done properly: drawn from the OS RNG with
//! uniform sampling, never weak, never printed.
//!
//! A [`DoorCode`] is 4–8 digits ([`CodeLength`], 6 by default). Weak codes
//! ([`is_weak`]) are redrawn: all-same digits, ascending/descending runs,
//! repeated blocks (121212, 123123), mirrors (123321), keypad lines
//! (147258, 2580) and 19xx/20xx years at either end. Uniqueness per lock
//! and window is the store's job (an exclusion constraint in PostgreSQL).

use std::fmt;

use rand::rngs::{StdRng, SysRng};
use rand::{RngExt, SeedableRng};

use crate::error::BookingError;

/// A door-lock PIN. `Debug` and `Display` never print the digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DoorCode(String);

impl DoorCode {
    /// Parses a PIN of 4–8 ASCII digits.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `code`.
    pub fn parse(value: &str) -> Result<Self, BookingError> {
        CodeLength::new(value.len())?;
        if value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(BookingError::invalid("code", "must be digits only"))
        }
    }

    /// The digits: for the lock and the guest only, never for logs.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// How many digits.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a code has 4–8 digits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for DoorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DoorCode(<{} digits redacted>)", self.0.len())
    }
}

/// The number of digits a lock model takes: 4–8, default 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodeLength(u8);

impl Default for CodeLength {
    fn default() -> Self {
        Self(6)
    }
}

impl CodeLength {
    /// A length of `n` digits.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `code_length` outside 4–8.
    pub fn new(n: usize) -> Result<Self, BookingError> {
        u8::try_from(n)
            .ok()
            .filter(|n| (4..=8).contains(n))
            .map(Self)
            .ok_or_else(|| BookingError::invalid("code_length", "must be between 4 and 8"))
    }

    /// The number of digits.
    #[must_use]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// Where new codes come from; tests substitute a scripted source.
pub trait CodeSource: Send + Sync + fmt::Debug {
    /// A fresh code of `len` digits that is not weak.
    ///
    /// # Errors
    /// [`BookingError::Random`] if the random source fails.
    fn next_code(&self, len: CodeLength) -> Result<DoorCode, BookingError>;
}

/// Codes from the operating system's RNG (the default [`CodeSource`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsCodes;

impl CodeSource for OsCodes {
    fn next_code(&self, len: CodeLength) -> Result<DoorCode, BookingError> {
        generate(len)
    }
}

/// A fresh strong code: a CSPRNG seeded from the OS RNG ([`SysRng`]) draws
/// each digit with `random_range(0..10)` (uniform, no modulo bias); weak
/// codes are redrawn.
///
/// # Errors
/// [`BookingError::Random`] if the OS RNG fails.
pub fn generate(len: CodeLength) -> Result<DoorCode, BookingError> {
    let mut rng = StdRng::try_from_rng(&mut SysRng)
        .map_err(|e| BookingError::Random(format!("OS random generator: {e}")))?;
    loop {
        let digits = draw_digits(&mut rng, len);
        if !is_weak(&digits) {
            return Ok(DoorCode(digits));
        }
    }
}

/// `len` independent uniform digits.
pub fn draw_digits(rng: &mut impl RngExt, len: CodeLength) -> String {
    (0..len.get())
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Straight lines on a phone keypad (1-2-3 / 4-5-6 / 7-8-9 / 0 under 8),
/// read in every direction; a code inside one is weak.
const KEYPAD_LINES: [&str; 12] = [
    "147258369",
    "963852741",
    "741852963",
    "369258147",
    "789456123",
    "321654987",
    "1590",
    "0951",
    "3570",
    "0753",
    "2580",
    "0852",
];

/// Whether a code is easy to guess (see the module docs).
#[must_use]
pub fn is_weak(code: &str) -> bool {
    let d: Vec<u8> = code.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    is_run(&d) || is_repeated_block(&d) || is_mirror(&d) || on_keypad_line(code) || has_year(code)
}

fn is_run(d: &[u8]) -> bool {
    let step = |a: u8, b: u8| (10 + b - a) % 10;
    let up = d.windows(2).all(|w| step(w[0], w[1]) == 1);
    let down = d.windows(2).all(|w| step(w[0], w[1]) == 9);
    up || down
}

fn is_repeated_block(d: &[u8]) -> bool {
    (1..=d.len() / 2).any(|p| (p..d.len()).all(|i| d[i] == d[i - p]))
}

fn is_mirror(d: &[u8]) -> bool {
    d.iter().eq(d.iter().rev())
}

fn on_keypad_line(code: &str) -> bool {
    KEYPAD_LINES.iter().any(|line| line.contains(code))
}

fn has_year(code: &str) -> bool {
    let is_year = |s: &str| s.starts_with("19") || s.starts_with("20");
    code.len() >= 4 && (is_year(&code[..4]) || is_year(&code[code.len() - 4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_codes_of_every_kind_are_recognised() {
        for weak in [
            "000000", "111111", "123456", "654321", "890123", "121212", "123123", "112112",
            "123321", "12321", "147258", "2580", "0852", "1990", "2024", "199512", "121985",
            "20261128", "1111", "987654",
        ] {
            assert!(is_weak(weak), "{weak} should be weak");
        }
        for strong in ["482915", "730264", "5813", "93847165", "835047"] {
            assert!(!is_weak(strong), "{strong} should be strong");
        }
    }

    #[test]
    fn the_blocklist_removes_only_a_small_share_of_six_digit_codes() {
        let weak = (0..1_000_000)
            .filter(|n| is_weak(&format!("{n:06}")))
            .count();
        assert!(weak < 50_000, "{weak} weak codes");
    }

    #[test]
    fn drawn_digits_are_uniform() {
        // Chi-square over 10 bins, 9 degrees of freedom: 42 is about the
        // one-in-a-million critical value, so a fair source practically
        // never fails, while a biased one (e.g. `% n` over bytes) would.
        let mut rng = StdRng::try_from_rng(&mut SysRng).unwrap();
        let mut counts = [0u64; 10];
        let len = CodeLength::new(8).unwrap();
        for _ in 0..25_000 {
            for b in draw_digits(&mut rng, len).bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        let expected = 200_000.0 / 10.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 42.0, "chi2 = {chi2}, counts = {counts:?}");
    }

    #[test]
    fn no_issued_code_is_weak_and_every_position_uses_every_digit() {
        let len = CodeLength::default();
        let mut per_position = [[0u32; 10]; 6];
        for _ in 0..20_000 {
            let code = generate(len).unwrap();
            assert!(!is_weak(code.expose()));
            for (i, b) in code.expose().bytes().enumerate() {
                per_position[i][usize::from(b - b'0')] += 1;
            }
        }
        for counts in per_position {
            // 2,000 expected each; the blocklist skews a few percent at most.
            assert!(
                counts.iter().all(|&c| (1_600..=2_400).contains(&c)),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn codes_never_show_in_debug_output() {
        let code = DoorCode::parse("482915").unwrap();
        assert!(!format!("{code:?}").contains("482915"));
        assert!(DoorCode::parse("12a456").is_err());
        assert!(DoorCode::parse("123").is_err());
        assert!(CodeLength::new(9).is_err());
    }
}
