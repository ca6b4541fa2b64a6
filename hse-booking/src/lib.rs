//! hse-booking: guests, race-free bookings of areas, door-lock codes with a
//! programming lifecycle, and notifications through an outbox.
//!
//! Double bookings and duplicate lock codes are impossible, not unlikely:
//! the pure rules give friendly errors, and the stores make them true under
//! concurrency (PostgreSQL exclusion constraints; one lock in memory).
//!
//! # Layout
//! - [`model`]: guests, companions, bookings and their states.
//! - Rules, pure: [`window`] (stays, turnover gap, availability, local
//!   times), [`status`] (the state machine), [`door_code`] and
//!   [`confirmation`] (codes), [`codes`] (a code's life on its lock),
//!   [`policy`] (per-establishment and per-lock settings),
//!   [`notification`] (outbox rows).
//! - [`store`]: the storage port; [`memory`] and `postgres` adapters.
//! - [`service`]: [`Bookings`], which ties rules, store, authorization and
//!   outbox together.
//! - Workers: [`stays`] (automatic check-in/out), [`lock`] (the
//!   [`LockProgrammer`] port and its retrying worker), [`dispatcher`] (the
//!   [`NotificationChannel`] port and outbox sender) with [`webhook`] and
//!   [`smtp`] channels; [`clock`] makes time injectable.
//!
//! # Wiring (for a server)
//! Build one [`Bookings`] over a [`BookingStore`] (`postgres::PgBookingStore`
//! after `postgres::migrate`, or [`MemoryBookingStore`]) and hse-core's
//! `TenancyStore`; then run, in every process that should do background
//! work (several may, safely):
//! - [`stays::StayWorker`] — automatic check-in/check-out;
//! - [`CodeProgrammer`] with a [`LockProgrammer`] that sends device
//!   commands — codes onto and off the locks;
//! - [`Dispatcher`] with a [`webhook::WebhookChannel`] and/or
//!   [`smtp::SmtpChannel`] — the outbox.
//!
//! Lock `code_used` events go to [`Bookings::record_code_use`].
//!
//! # Example
//! ```
//! use chrono::{Duration, Utc};
//! use hse_booking::window::{Blocked, BookingWindow, Turnover};
//!
//! let now = Utc::now();
//! let first = BookingWindow::new(now, now + Duration::days(2)).unwrap();
//! let gap = Turnover::default(); // 60 min after check-out, 30 before check-in
//! let held = Blocked { start: first.check_in(), end: gap.blocked_until(&first) };
//! let next_in = first.check_out() + Duration::minutes(60);
//! let next = BookingWindow::new(next_in, next_in + Duration::days(1)).unwrap();
//! let wanted = Blocked { start: next.check_in(), end: gap.blocked_until(&next) };
//! assert!(!held.conflicts(&wanted)); // back-to-back at exactly the gap
//! ```

pub mod clock;
pub mod codes;
pub mod confirmation;
pub mod dispatcher;
pub mod door_code;
pub mod error;
pub mod lock;
pub mod memory;
pub mod model;
pub mod notification;
pub mod policy;
pub mod service;
pub mod smtp;
pub mod status;
pub mod stays;
pub mod store;
pub mod webhook;
pub mod window;

#[cfg(feature = "postgres")]
pub mod postgres;

pub use dispatcher::{Dispatcher, NotificationChannel};
pub use error::{BookingError, Result};
pub use lock::{CodeProgrammer, LockProgrammer};
pub use memory::MemoryBookingStore;
pub use model::{Booking, BookingId, BookingStatus, DoorCodeId, Guest, GuestId, NotificationId};
// The inputs of `Bookings`' create calls, where a partner looks first.
pub use model::{NewBooking, NewGuest, Stay};
pub use service::{Bookings, BookingsConfig};
pub use status::IllegalTransition;
pub use store::BookingStore;
pub use window::BookingWindow;
