//! Notifications to guests, written to an outbox in the same
//! transaction as the booking change that causes them, then delivered by
//! the [`Dispatcher`](crate::dispatcher::Dispatcher).

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::door_code::DoorCode;
use crate::error::BookingError;
use crate::model::{Booking, BookingId, Guest, GuestId, NotificationId, Owner};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The booking was confirmed.
    BookingConfirmed,
    /// How to get in, with the door code.
    CheckInInstructions,
    /// Dates, area or guests changed.
    BookingModified,
    /// The booking was cancelled.
    BookingCancelled,
}

/// How a notification travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Email to the guest (SMTP).
    Email,
    /// Signed HTTP POST to the operator's endpoint.
    Webhook,
}

/// Delivery state (as in the seed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// Not delivered yet.
    Pending,
    /// Delivered.
    Sent,
    /// Gave up after the last attempt.
    Failed,
}

macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored name.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }

            /// Parses a stored name.
            ///
            /// # Errors
            /// [`BookingError::Invalid`] for an unknown name.
            pub fn parse(value: &str) -> Result<Self, BookingError> {
                match value {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(BookingError::invalid(stringify!($ty), format!("unknown `{value}`"))),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(NotificationKind {
    BookingConfirmed => "booking_confirmed",
    CheckInInstructions => "check_in_instructions",
    BookingModified => "booking_modified",
    BookingCancelled => "booking_cancelled",
});
names!(ChannelKind { Email => "email", Webhook => "webhook" });
names!(NotificationStatus { Pending => "pending", Sent => "sent", Failed => "failed" });

/// One notification in the outbox. `Debug` omits the message, which may
/// hold a door code.
#[derive(Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its id.
    pub id: NotificationId,
    /// The booking's organization.
    pub tenancy: Owner,
    /// The booking (`None` once deleted).
    pub booking_id: Option<BookingId>,
    /// The guest.
    pub guest_id: GuestId,
    /// What happened.
    pub kind: NotificationKind,
    /// How it travels.
    pub channel: ChannelKind,
    /// Email address, or `webhook`.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub message: String,
    /// Delivery state.
    pub status: NotificationStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the dispatcher should next try (`None`: done).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notification")
            .field("id", &self.id)
            .field("booking_id", &self.booking_id)
            .field("kind", &self.kind)
            .field("channel", &self.channel)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The notifications of one event, one per channel that can reach the
/// guest (email needs an address).
#[must_use]
pub fn outbox(
    kind: NotificationKind,
    booking: &Booking,
    guest: &Guest,
    channels: &[ChannelKind],
    code: Option<&DoorCode>,
    now: DateTime<Utc>,
) -> Vec<Notification> {
    let (subject, message) = render(kind, booking, guest, code);
    channels
        .iter()
        .filter_map(|&channel| {
            let recipient = match channel {
                ChannelKind::Email => guest.email.as_ref()?.to_string(),
                ChannelKind::Webhook => "webhook".to_owned(),
            };
            Some(Notification {
                id: NotificationId::new(),
                tenancy: booking.tenancy,
                booking_id: Some(booking.id),
                guest_id: guest.id,
                kind,
                channel,
                recipient,
                subject: subject.clone(),
                message: message.clone(),
                status: NotificationStatus::Pending,
                attempts: 0,
                next_attempt_at: Some(now),
                last_error: None,
                sent_at: None,
                created_at: now,
            })
        })
        .collect()
}

fn render(
    kind: NotificationKind,
    booking: &Booking,
    guest: &Guest,
    code: Option<&DoorCode>,
) -> (String, String) {
    let when = format!(
        "from {} to {}",
        booking.window.check_in().format("%Y-%m-%d %H:%M UTC"),
        booking.window.check_out().format("%Y-%m-%d %H:%M UTC")
    );
    let hello = format!("Hello {},", guest.first_name);
    let reference = &booking.confirmation_code;
    match kind {
        NotificationKind::BookingConfirmed => (
            format!("Booking {reference} confirmed"),
            format!("{hello}\n\nyour booking {reference} is confirmed, {when}.\n"),
        ),
        NotificationKind::CheckInInstructions => (
            format!("Check-in instructions for {reference}"),
            format!(
                "{hello}\n\nyour door code is {}. It works {when}, with a little grace on either side.\n",
                code.map_or("(sent separately)", DoorCode::expose)
            ),
        ),
        NotificationKind::BookingModified => (
            format!("Booking {reference} changed"),
            format!("{hello}\n\nyour booking {reference} now runs {when}.\n"),
        ),
        NotificationKind::BookingCancelled => (
            format!("Booking {reference} cancelled"),
            format!("{hello}\n\nyour booking {reference} ({when}) was cancelled.\n"),
        ),
    }
}

/// The notification after a delivery attempt: sent, retried with backoff
/// (10 s doubling, capped at 1 h), or failed after `max_attempts`.
#[must_use]
pub fn after_delivery(
    n: &Notification,
    result: Result<(), String>,
    now: DateTime<Utc>,
    max_attempts: u32,
) -> Notification {
    let mut next = n.clone();
    match result {
        Ok(()) => {
            next.status = NotificationStatus::Sent;
            next.sent_at = Some(now);
            next.next_attempt_at = None;
        }
        Err(e) => {
            next.attempts = n.attempts.saturating_add(1);
            next.last_error = Some(e);
            if next.attempts >= max_attempts {
                next.status = NotificationStatus::Failed;
                next.next_attempt_at = None;
            } else {
                let exp = next.attempts.saturating_sub(1).min(12);
                let delay = Duration::seconds(10 * (1i64 << exp)).min(Duration::hours(1));
                next.next_attempt_at = Some(now + delay);
            }
        }
    }
    next
}
