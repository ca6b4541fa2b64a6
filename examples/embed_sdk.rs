//! Run with: `cargo run --example embed_sdk`
//!
//! A partner's own service embedding HSE in-process, on the in-memory
//! adapters — no database, no server. The platform operator (root) opens an
//! organization for a hotel group and gives it an admin; the admin sets up
//! a hotel with a room and its door lock, registers a guest and books the
//! room. A second, overlapping booking is refused naming the first; one
//! starting exactly at the turnover gap is accepted. Confirming the stay
//! issues a door code, which the partner's own lock integration (a
//! [`LockProgrammer`]) puts on the lock, and check-in instructions wait in
//! the outbox for delivery.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use hse_booking::clock::SystemClock;
use hse_booking::codes::Attempt;
use hse_booking::lock::{LockProgrammer, ProgramCode};
use hse_booking::model::{NewBooking, NewGuest, Stay};
use hse_booking::{BookingError, Bookings, BookingsConfig, CodeProgrammer, DoorCodeId};
use hse_core::model::{NewOrganization, NewUser};
use hse_core::value::{Email, Metadata};
use hse_core::{DeviceId, OrganizationId, Principal, SystemRole, Tenancy, TenancyStore};
use sdk_story::{Hotel, first_root, hotel_with_a_room};

#[expect(
    dead_code,
    reason = "this example tells its own booking story; it shares the root account and the hotel set-up"
)]
#[path = "support/sdk_story.rs"]
mod sdk_story;

/// What `--help` prints.
const USAGE: &str = "embed_sdk: HSE embedded in a partner's own service, in-process

root opens an organization with an admin; the admin sets up a hotel, a room and its
door lock, a guest and a booking; an overlapping booking is refused, one at the
turnover gap accepted; confirming issues a door code that the partner's own lock
integration programs. Memory adapters only: no server, database or flags.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    // 1. Storage: the in-memory adapters (swap in the PostgreSQL ones in
    //    production; the service code does not change).
    let tenancy_store: Arc<dyn TenancyStore> =
        Arc::new(hse_core::memory::MemoryTenancyStore::new());
    let booking_store = Arc::new(hse_booking::MemoryBookingStore::new());
    let tenancy = Tenancy::new(tenancy_store.clone());
    let bookings = Bookings::new(
        booking_store.clone(),
        tenancy_store.clone(),
        BookingsConfig::default(),
    );

    // 2. Roles: the operator's root account, and an admin for the hotel group.
    let root = first_root(&tenancy, "embed").await?;
    let group = NewOrganization {
        name: "Hoteles del Sol".into(),
        ..Default::default()
    };
    let org = tenancy.create_organization(&root, group).await?;
    let admin = admin_of(&tenancy, &root, org.id).await?;
    println!("organization {} with its admin", org.name);

    // 3. An establishment, a room in it, and the room's door lock (the
    //    admin is assigned to the hotel it created, so it comes back
    //    reloaded: a principal is a snapshot, a service loads it per request).
    let Hotel {
        hotel,
        room,
        lock,
        by: admin,
    } = hotel_with_a_room(&tenancy, &admin, org.id, "0001").await?;
    println!("{} has {} with lock {}", hotel.name, room.name, lock.id);

    // 4. A guest and a booking: two nights from 14:00 to 11:00 UTC.
    let ana = NewGuest {
        first_name: "Ana".into(),
        last_name: "García".into(),
        email: Some(Email::parse("ana@guest.example")?),
        ..Default::default()
    };
    let now = Utc::now();
    let ana = bookings.create_guest(&admin, ana, now).await?;
    let check_in = Utc
        .with_ymd_and_hms(2030, 6, 1, 14, 0, 0)
        .single()
        .context("date")?;
    let check_out = check_in + Duration::hours(45);
    let stay = |check_in, check_out| NewBooking {
        area_id: room.id,
        guest_id: ana.id,
        stay: Stay::Instants {
            check_in,
            check_out,
        },
        total_guests: 2,
        special_requests: String::new(),
        metadata: Metadata::default(),
    };
    let booking = bookings
        .create_booking(&admin, stay(check_in, check_out), now)
        .await?;
    println!(
        "booked {} for {} → {} ({}), confirmation {}",
        room.name,
        booking.window.check_in(),
        booking.window.check_out(),
        booking.status,
        booking.confirmation_code.as_str()
    );

    // 5. A conflict: the room is held until an hour after check-out.
    let overlapping = stay(
        check_out - Duration::hours(2),
        check_out + Duration::days(1),
    );
    match bookings.create_booking(&admin, overlapping, now).await {
        Err(BookingError::Overlap { with }) => println!("refused: overlaps booking {with}"),
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    let next_in = booking.blocked_until;
    let next = stay(next_in, next_in + Duration::days(1));
    let next = bookings.create_booking(&admin, next, now).await?;
    println!("accepted back-to-back at {}", next.window.check_in());

    // 6. Confirming issues a code on the room's lock; the partner's lock
    //    integration programs it.
    bookings.confirm(&admin, booking.id, now).await?;
    let programmer =
        CodeProgrammer::new(booking_store, Arc::new(VendorLock), Arc::new(SystemClock));
    let programmed = programmer.run_once().await?;
    for code in bookings.codes(&admin, booking.id).await? {
        println!(
            "door code {} ({} digits) on lock {}: {} — valid {} → {}",
            code.id,
            code.code.len(),
            code.device_id,
            code.state,
            code.valid_from,
            code.valid_until
        );
    }
    println!("{programmed} code(s) programmed");

    // 7. The outbox: what the guest will be told, waiting for a channel.
    for n in bookings.notifications(&admin, booking.id).await? {
        println!(
            "outbox: {} to {} via {} ({})",
            n.kind, n.recipient, n.channel, n.status
        );
    }
    Ok(())
}

/// The partner's own door-lock integration (here it accepts everything).
/// A real one calls the vendor's API; the PIN must never be logged.
#[derive(Debug)]
struct VendorLock;

#[async_trait]
impl LockProgrammer for VendorLock {
    async fn program(&self, request: &ProgramCode<'_>) -> Attempt {
        println!("lock {}: slot {} programmed", request.device, request.slot);
        Attempt::Acknowledged
    }

    async fn remove(&self, device: DeviceId, slot: DoorCodeId) -> Attempt {
        println!("lock {device}: slot {slot} cleared");
        Attempt::Acknowledged
    }
}

/// An admin of `org`, created by `by` (invited later to set a password).
async fn admin_of(
    tenancy: &Tenancy,
    by: &Principal,
    org: OrganizationId,
) -> anyhow::Result<Principal> {
    let new = NewUser {
        email: Email::parse("admin@sol.example")?,
        first_name: "Admin".into(),
        last_name: String::new(),
        role_id: SystemRole::Admin.id(),
        partner_company_id: None,
        organization_id: Some(org),
    };
    // Root creates at once; anyone scoped below the platform would get an
    // invitation for the admin to accept instead.
    let admin = tenancy
        .create_user(by, new, None)
        .await?
        .into_user()
        .ok_or_else(|| anyhow::anyhow!("root creates users at once"))?;
    Ok(tenancy.principal(admin.id).await?)
}
