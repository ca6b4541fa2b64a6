//! Plain data of the booking domain: guests, companions,
//! bookings and their states, validated on the way in.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use hse_core::value::{Email, Metadata, optional_text, text};
use hse_core::{AreaId, EstablishmentId, OrganizationId, PartnerCompanyId, Resource, UserId};
use serde::{Deserialize, Serialize};

use crate::confirmation::ConfirmationCode;
use crate::error::BookingError;
use crate::window::{BookingWindow, StayTimes};

hse_core::define_id!(
    /// Identifies a booking.
    BookingId
);
hse_core::define_id!(
    /// Identifies a guest.
    GuestId
);
hse_core::define_id!(
    /// Identifies a door-lock code (also its slot id on the lock).
    DoorCodeId
);
hse_core::define_id!(
    /// Identifies a notification in the outbox.
    NotificationId
);

/// Where a booking or guest lives in the tenant tree. Stored with the row
/// (an organization never changes partner), so stores filter by scope
/// without joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Owner {
    /// The partner company of the organization, if any.
    pub partner_company_id: Option<PartnerCompanyId>,
    /// The organization.
    pub organization_id: OrganizationId,
}

/// The state of a booking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BookingStatus {
    /// Created, waiting for confirmation.
    #[serde(rename = "pending")]
    Pending,
    /// Confirmed by the guest.
    #[serde(rename = "confirmed")]
    Confirmed,
    /// The stay has started (automatic check-in).
    #[serde(rename = "in-progress")]
    InProgress,
    /// The stay is over (automatic check-out).
    #[serde(rename = "completed")]
    Completed,
    /// Cancelled while pending or confirmed.
    #[serde(rename = "cancelled")]
    Cancelled,
}

impl BookingStatus {
    /// Every state, for exhaustive tests.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Confirmed,
        Self::InProgress,
        Self::Completed,
        Self::Cancelled,
    ];

    /// The state's name as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming `status`.
    pub fn parse(value: &str) -> Result<Self, BookingError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| BookingError::invalid("status", format!("unknown status `{value}`")))
    }

    /// Whether the booking holds its area (everything but cancelled).
    #[must_use]
    pub fn is_active(self) -> bool {
        self != Self::Cancelled
    }
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A guest of an organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Guest {
    /// Its id.
    pub id: GuestId,
    /// The organization the guest belongs to.
    pub tenancy: Owner,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Where notifications go, if known.
    pub email: Option<Email>,
    /// Phone (free text).
    pub phone: String,
    /// Identity document kind (`passport`, `dni`, ...).
    pub document_type: String,
    /// Identity document number.
    pub document_number: String,
    /// Country (free text, ISO code recommended).
    pub country: String,
    /// Free-form data.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input to create a [`Guest`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewGuest {
    /// The organization (must be in the caller's scope).
    pub organization_id: Option<OrganizationId>,
    /// Given name, 1–100 characters.
    pub first_name: String,
    /// Family name.
    #[serde(default)]
    pub last_name: String,
    /// Email.
    #[serde(default)]
    pub email: Option<Email>,
    /// Phone.
    #[serde(default)]
    pub phone: String,
    /// Document kind.
    #[serde(default)]
    pub document_type: String,
    /// Document number.
    #[serde(default)]
    pub document_number: String,
    /// Country.
    #[serde(default)]
    pub country: String,
    /// Free-form data.
    #[serde(default)]
    pub metadata: Metadata,
}

impl NewGuest {
    /// Validates the input and builds the guest in `tenancy`.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] naming the first bad field.
    pub fn build(self, tenancy: Owner, now: DateTime<Utc>) -> Result<Guest, BookingError> {
        Ok(Guest {
            id: GuestId::new(),
            tenancy,
            first_name: text("first_name", &self.first_name, 100)?,
            last_name: optional_text("last_name", &self.last_name, 100)?,
            email: self.email,
            phone: optional_text("phone", &self.phone, 50)?,
            document_type: optional_text("document_type", &self.document_type, 50)?,
            document_number: optional_text("document_number", &self.document_number, 100)?,
            country: optional_text("country", &self.country, 100)?,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial update of a [`Guest`]; absent fields stay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GuestPatch {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New email.
    pub email: Option<Email>,
    /// New phone.
    pub phone: Option<String>,
    /// New document kind.
    pub document_type: Option<String>,
    /// New document number.
    pub document_number: Option<String>,
    /// New country.
    pub country: Option<String>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
}

impl GuestPatch {
    /// Applies the patch, validating every given field first.
    ///
    /// # Errors
    /// [`BookingError::Invalid`]; `guest` is untouched then.
    pub fn apply(self, guest: &mut Guest, now: DateTime<Utc>) -> Result<(), BookingError> {
        let mut next = guest.clone();
        if let Some(v) = self.first_name {
            next.first_name = text("first_name", &v, 100)?;
        }
        let fields = [
            (self.last_name, &mut next.last_name, "last_name", 100),
            (self.phone, &mut next.phone, "phone", 50),
            (
                self.document_type,
                &mut next.document_type,
                "document_type",
                50,
            ),
            (
                self.document_number,
                &mut next.document_number,
                "document_number",
                100,
            ),
            (self.country, &mut next.country, "country", 100),
        ];
        for (value, slot, field, max) in fields {
            if let Some(v) = value {
                *slot = optional_text(field, &v, max)?;
            }
        }
        if let Some(v) = self.email {
            next.email = Some(v);
        }
        if let Some(v) = self.metadata {
            next.metadata = v;
        }
        next.updated_at = now;
        *guest = next;
        Ok(())
    }
}

/// A companion link between two guests of one organization. Stored once,
/// seen from both sides: from `guest_id`, the companion is `companion_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Companion {
    /// The guest the link is seen from.
    pub guest_id: GuestId,
    /// The other guest.
    pub companion_id: GuestId,
    /// `spouse`, `child`, `friend`, ...
    pub relationship: String,
    /// When the link was added.
    pub added_at: DateTime<Utc>,
}

impl Companion {
    /// The link as seen from `guest`, if it involves `guest`.
    #[must_use]
    pub fn seen_from(&self, guest: GuestId) -> Option<Self> {
        if self.guest_id == guest {
            Some(self.clone())
        } else if self.companion_id == guest {
            Some(Self {
                guest_id: guest,
                companion_id: self.guest_id,
                ..self.clone()
            })
        } else {
            None
        }
    }
}

/// Who cancelled a booking, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cancellation {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: UserId,
    /// Why (free text, may be empty).
    pub reason: String,
}

/// A booking of an area.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Booking {
    /// Its id.
    pub id: BookingId,
    /// Its organization (and partner).
    pub tenancy: Owner,
    /// The establishment of the area.
    pub establishment_id: EstablishmentId,
    /// The booked area.
    pub area_id: AreaId,
    /// The main guest.
    pub guest_id: GuestId,
    /// Check-in and check-out instants.
    pub window: BookingWindow,
    /// End of the time the area is held: check-out plus the turnover gap.
    pub blocked_until: DateTime<Utc>,
    /// Current state.
    pub status: BookingStatus,
    /// Short unique code for the guest.
    pub confirmation_code: ConfirmationCode,
    /// Free text from the guest.
    pub special_requests: String,
    /// How many people stay.
    pub total_guests: u16,
    /// Free-form data.
    pub metadata: Metadata,
    /// Who created it.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Set when cancelled.
    pub cancellation: Option<Cancellation>,
}

impl Booking {
    /// Where the booking lives, for authorization.
    #[must_use]
    pub fn resource(&self) -> Resource {
        Resource::organization(
            self.tenancy.partner_company_id,
            self.tenancy.organization_id,
        )
        .in_establishment(self.establishment_id)
    }
}

/// When a stay is: exact instants, or dates resolved with the
/// establishment's default check-in/check-out local times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Stay {
    /// Exact instants.
    Instants {
        /// Check-in.
        check_in: DateTime<Utc>,
        /// Check-out.
        check_out: DateTime<Utc>,
    },
    /// Local dates in the establishment's time zone.
    Dates {
        /// Arrival date.
        arrival: NaiveDate,
        /// Departure date.
        departure: NaiveDate,
    },
}

impl Stay {
    /// The window of this stay; dates resolve in `tz` at `times`.
    ///
    /// # Errors
    /// [`BookingError::Invalid`] as [`BookingWindow::new`] and
    /// [`StayTimes::resolve`] refuse.
    pub fn window(
        self,
        tz: chrono_tz::Tz,
        times: &StayTimes,
    ) -> Result<BookingWindow, BookingError> {
        match self {
            Self::Instants {
                check_in,
                check_out,
            } => BookingWindow::new(check_in, check_out),
            Self::Dates { arrival, departure } => times.resolve(tz, arrival, departure),
        }
    }
}

/// Input to create a [`Booking`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewBooking {
    /// The area to book.
    pub area_id: AreaId,
    /// The main guest (same organization).
    pub guest_id: GuestId,
    /// When.
    pub stay: Stay,
    /// How many people, 1–100.
    #[serde(default = "one")]
    pub total_guests: u16,
    /// Free text.
    #[serde(default)]
    pub special_requests: String,
    /// Free-form data.
    #[serde(default)]
    pub metadata: Metadata,
}

fn one() -> u16 {
    1
}

/// A modification of a pending or confirmed booking; absent fields stay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BookingPatch {
    /// New dates.
    pub stay: Option<Stay>,
    /// New area (same establishment).
    pub area_id: Option<AreaId>,
    /// New main guest.
    pub guest_id: Option<GuestId>,
    /// New head count.
    pub total_guests: Option<u16>,
    /// New requests.
    pub special_requests: Option<String>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
}

/// Checks a head count.
///
/// # Errors
/// [`BookingError::Invalid`] naming `total_guests`.
pub fn check_total_guests(n: u16) -> Result<u16, BookingError> {
    if (1..=100).contains(&n) {
        Ok(n)
    } else {
        Err(BookingError::invalid(
            "total_guests",
            "must be between 1 and 100",
        ))
    }
}

/// Checks free text from the guest.
///
/// # Errors
/// [`BookingError::Invalid`] naming `special_requests`.
pub fn check_requests(v: &str) -> Result<String, BookingError> {
    Ok(optional_text("special_requests", v, 2000)?)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn a_companion_link_reads_from_both_sides() {
        let (a, b) = (GuestId::new(), GuestId::new());
        let link = Companion {
            guest_id: a,
            companion_id: b,
            relationship: "spouse".into(),
            added_at: Utc::now(),
        };
        assert_eq!(link.seen_from(b).map(|c| c.companion_id), Some(a));
        assert_eq!(link.seen_from(a).map(|c| c.companion_id), Some(b));
        assert!(link.seen_from(GuestId::new()).is_none());
    }
}
