//! Validated value types shared by the model: built once at the edge
//! (parse, don't validate) and trusted inward.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Checks a required display text: trimmed, 1..=`max` characters, no
/// control characters. Returns the trimmed text.
///
/// # Errors
/// [`CoreError::Invalid`] naming `field`.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, CoreError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    optional_text(field, trimmed, max)
}

/// Like [`text`] but allows the empty string.
///
/// # Errors
/// [`CoreError::Invalid`] naming `field`.
pub fn optional_text(field: &'static str, value: &str, max: usize) -> Result<String, CoreError> {
    let trimmed = value.trim();
    if trimmed.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// An email address, lower-cased. Deliberately permissive (one `@`, a dot
/// in the domain, no spaces, ≤254 chars): the real check is delivery.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Email(String);

impl Email {
    /// Parses and normalises an address.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `email`.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        let v = value.trim().to_lowercase();
        let bad = |why: &str| CoreError::invalid("email", why.to_owned());
        if v.len() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must be at most 254 characters without spaces"));
        }
        let (local, domain) = v.split_once('@').ok_or_else(|| bad("must contain @"))?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad("is not an email address"));
        }
        Ok(Self(v))
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone name, e.g. `Europe/Madrid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Madrid"))]
pub struct Timezone(chrono_tz::Tz);

impl Timezone {
    /// Parses an IANA name.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `timezone`.
    pub fn parse(name: &str) -> Result<Self, CoreError> {
        chrono_tz::Tz::from_str(name).map(Self).map_err(|_| {
            CoreError::invalid("timezone", format!("`{name}` is not an IANA time zone"))
        })
    }

    /// The zone, for date arithmetic.
    #[must_use]
    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }
}

impl TryFrom<String> for Timezone {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Timezone> for String {
    fn from(value: Timezone) -> Self {
        value.0.name().to_owned()
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A WGS84 position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPoint")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GeoPoint {
    /// Latitude in degrees, −90..=90.
    pub lat: f64,
    /// Longitude in degrees, −180..=180.
    pub lon: f64,
}

#[derive(Deserialize)]
struct RawPoint {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawPoint> for GeoPoint {
    type Error = CoreError;
    fn try_from(p: RawPoint) -> Result<Self, Self::Error> {
        Self::new(p.lat, p.lon)
    }
}

impl GeoPoint {
    /// Builds a point, refusing out-of-range or non-finite coordinates.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `location`.
    pub fn new(lat: f64, lon: f64) -> Result<Self, CoreError> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(CoreError::invalid(
                "location",
                "latitude must be in ±90 and longitude in ±180",
            ));
        }
        Ok(Self { lat, lon })
    }
}

/// A MAC address, normalised to `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MacAddress(String);

impl MacAddress {
    /// Parses `aa:bb:..`, `aa-bb-..` or `aabbccddeeff`.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `mac_address`.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        let hex: String = value.chars().filter(|c| !matches!(c, ':' | '-')).collect();
        if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CoreError::invalid("mac_address", "must be six hex octets"));
        }
        let lower = hex.to_ascii_lowercase();
        let octets: Vec<&str> = (0..6).map(|i| &lower[i * 2..i * 2 + 2]).collect();
        Ok(Self(octets.join(":")))
    }

    /// The normalised text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MacAddress {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MacAddress> for String {
    fn from(value: MacAddress) -> Self {
        value.0
    }
}

/// Free-form JSON metadata: always an object, at most 16 KiB serialised.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = Object))]
pub struct Metadata(serde_json::Map<String, serde_json::Value>);

impl Metadata {
    /// The largest accepted metadata, serialised.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Checks a JSON value.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `metadata`.
    pub fn parse(value: serde_json::Value) -> Result<Self, CoreError> {
        let serde_json::Value::Object(map) = value else {
            return Err(CoreError::invalid("metadata", "must be a JSON object"));
        };
        let size = serde_json::to_vec(&map).map_or(usize::MAX, |v| v.len());
        if size > Self::MAX_BYTES {
            return Err(CoreError::invalid("metadata", "must be at most 16 KiB"));
        }
        Ok(Self(map))
    }

    /// The object.
    #[must_use]
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}

impl TryFrom<serde_json::Value> for Metadata {
    type Error = CoreError;
    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Metadata> for serde_json::Value {
    fn from(value: Metadata) -> Self {
        serde_json::Value::Object(value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_nonsense_refused() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "a b@x.com",
            "a@b@c.com",
            "a@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timezones_must_be_iana_names() {
        assert_eq!(
            Timezone::parse("Europe/Madrid").unwrap().to_string(),
            "Europe/Madrid"
        );
        assert!(Timezone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn mac_addresses_are_normalised() {
        assert_eq!(
            MacAddress::parse("AA-BB-CC-00-11-22").unwrap().as_str(),
            "aa:bb:cc:00:11:22"
        );
        assert!(MacAddress::parse("aa:bb").is_err());
        assert!(MacAddress::parse("zz:bb:cc:00:11:22").is_err());
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(Metadata::parse(serde_json::json!({"floor": 2})).is_ok());
        assert!(Metadata::parse(serde_json::json!([1])).is_err());
        let big = "x".repeat(Metadata::MAX_BYTES);
        assert!(Metadata::parse(serde_json::json!({ "a": big })).is_err());
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(text("name", "  Hotel  ", 10).unwrap(), "Hotel");
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
        assert!(text("name", "a\u{0}b", 10).is_err());
    }

    #[test]
    fn points_out_of_range_are_refused() {
        assert!(GeoPoint::new(40.4, -3.7).is_ok());
        assert!(GeoPoint::new(91.0, 0.0).is_err());
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(serde_json::from_str::<GeoPoint>(r#"{"lat":100,"lon":0}"#).is_err());
    }
}
