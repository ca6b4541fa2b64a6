//! A partner's service on the SDK, through the `hse` facade alone (shared
//! by `examples/embed_postgres.rs` and `tests/sdk.rs`; `examples/embed_sdk.rs`
//! takes its root account and hotel set-up): the root account,
//! an organization, a hotel with a room and its door lock, a guest, a
//! booking, an overlapping one refused; booking attempts paced by a rate
//! limiter (Redis-backed when shared between nodes).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use hse::auth::rate_limit::{Decision, Quota, RateLimiter};
use hse::booking::{
    BookingError, BookingId, BookingStore, Bookings, BookingsConfig, NewBooking, NewGuest, Stay,
};
use hse::core::value::{Email, Metadata, Timezone};
use hse::core::{
    Area, AreaId, Device, Establishment, NewArea, NewDevice, NewEstablishment, NewOrganization,
    NewUser, OrganizationId, Principal, Scope, SystemRole, Tenancy, TenancyStore,
};

/// The stores and the limiter a service runs on.
pub(crate) struct Stores {
    /// Tenancy (memory or PostgreSQL).
    pub(crate) tenancy: Arc<dyn TenancyStore>,
    /// Bookings (memory or PostgreSQL).
    pub(crate) bookings: Arc<dyn BookingStore>,
    /// Rate limits (memory or Redis).
    pub(crate) limiter: Arc<dyn RateLimiter>,
}

/// What the story made and saw.
#[derive(Debug)]
pub(crate) struct Told {
    /// The room booked.
    pub(crate) room: AreaId,
    /// The booking made.
    pub(crate) booking: BookingId,
    /// The booking the overlapping attempt was refused for.
    pub(crate) refused_for: BookingId,
    /// Booking attempts the limiter let through before refusing one.
    pub(crate) attempts_allowed: u32,
}

/// Booking attempts one guest may make per minute, here.
const ATTEMPTS: u32 = 2;

/// Runs the story on `stores`; `tag` makes its emails unique, so it can
/// run again on the same database.
pub(crate) async fn hotel_story(stores: &Stores, tag: &str) -> anyhow::Result<Told> {
    let tenancy = Tenancy::new(stores.tenancy.clone());
    let bookings = Bookings::new(
        stores.bookings.clone(),
        stores.tenancy.clone(),
        BookingsConfig::default(),
    );
    let root = first_root(&tenancy, tag).await?;
    let org = NewOrganization {
        name: format!("Hoteles del Sol {tag}"),
        ..Default::default()
    };
    let org = tenancy.create_organization(&root, org).await?;
    let Hotel {
        hotel,
        room,
        lock,
        by: root,
    } = hotel_with_a_room(&tenancy, &root, org.id, tag).await?;
    println!("{}: {} with door lock {}", hotel.name, room.name, lock.id);

    let now = Utc::now();
    let guest = NewGuest {
        organization_id: Some(org.id),
        first_name: "Ana".into(),
        email: Some(Email::parse(&format!("ana.{tag}@guest.example"))?),
        ..Default::default()
    };
    let guest = bookings.create_guest(&root, guest, now).await?;
    let check_in = Utc
        .with_ymd_and_hms(2030, 6, 1, 14, 0, 0)
        .single()
        .context("a date")?;
    let stay = |from: chrono::Duration, nights: i64| NewBooking {
        area_id: room.id,
        guest_id: guest.id,
        stay: Stay::Instants {
            check_in: check_in + from,
            check_out: check_in + from + chrono::Duration::hours(24 * nights - 3),
        },
        total_guests: 1,
        special_requests: String::new(),
        metadata: Metadata::default(),
    };
    let quota = Quota::new(
        NonZeroU32::new(ATTEMPTS).context("a burst")?,
        Duration::from_secs(60),
    );
    let key = format!("booking-attempts:{}", guest.id);
    let mut attempts_allowed = 0;
    let mut made = None;
    let mut refused_for = None;
    // The guest tries the same two nights three times; the limiter (shared
    // through Redis between the partner's nodes) stops the third.
    for _ in 0..3 {
        if let Decision::Limited { retry_after } = stores.limiter.check(&key, quota).await? {
            println!("third attempt paced: retry after {retry_after:?}");
            break;
        }
        attempts_allowed += 1;
        match bookings
            .create_booking(&root, stay(chrono::Duration::zero(), 2), now)
            .await
        {
            Ok(booking) => {
                println!("booked {} ({})", booking.id, booking.status);
                made = Some(booking.id);
            }
            Err(BookingError::Overlap { with }) => {
                println!("refused: overlaps booking {with}");
                refused_for = Some(with);
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Told {
        room: room.id,
        booking: made.context("the first attempt books")?,
        refused_for: refused_for.context("the second attempt overlaps")?,
        attempts_allowed,
    })
}

/// A hotel, one room in it and the room's door lock.
pub(crate) struct Hotel {
    /// The establishment.
    pub(crate) hotel: Establishment,
    /// Its room.
    pub(crate) room: Area,
    /// The room's door lock.
    pub(crate) lock: Device,
    /// Who made them, loaded again: a principal is a snapshot, and one
    /// that created the hotel is now assigned to it.
    pub(crate) by: Principal,
}

/// `by` sets up a hotel of `org` in Madrid with `Room 101` and its door
/// lock (`tag` makes the lock's serial number unique).
pub(crate) async fn hotel_with_a_room(
    tenancy: &Tenancy,
    by: &Principal,
    org: OrganizationId,
    tag: &str,
) -> anyhow::Result<Hotel> {
    let hotel = NewEstablishment {
        organization_id: org,
        name: "Hotel Sol Madrid".into(),
        address: "Gran Vía 1".into(),
        location: None,
        timezone: Timezone::parse("Europe/Madrid")?,
        metadata: Metadata::default(),
    };
    let hotel = tenancy.create_establishment(by, hotel).await?;
    let by = tenancy.principal(by.user_id).await?;
    let room = NewArea {
        establishment_id: hotel.id,
        parent_area_id: None,
        name: "Room 101".into(),
        kind: "room".into(),
        floor: Some(1),
        metadata: Metadata::default(),
    };
    let room = tenancy.create_area(&by, room).await?;
    let lock = NewDevice {
        area_id: room.id,
        device_type: "doorlock".into(),
        manufacturer: "Acme Locks".into(),
        model: "K6".into(),
        serial_number: format!("K6-{tag}"),
        mac_address: None,
        protocol: "vendor-cloud".into(),
        metadata: Metadata::default(),
    };
    let (lock, _device_secret) = tenancy.create_device(&by, lock).await?;
    Ok(Hotel {
        hotel,
        room,
        lock,
        by,
    })
}

/// The first principal: a root account inserted once at the platform
/// scope (hse-server's `bootstrap-root` does the same), then loaded.
pub(crate) async fn first_root(tenancy: &Tenancy, tag: &str) -> anyhow::Result<Principal> {
    let root = NewUser {
        email: Email::parse(&format!("root.{tag}@partner.example"))?,
        first_name: "Root".into(),
        last_name: String::new(),
        role_id: SystemRole::Root.id(),
        partner_company_id: None,
        organization_id: None,
    }
    .build(None, true, Utc::now())?;
    tenancy
        .store()
        .insert_user(&Scope::Platform, &root, None)
        .await?;
    Ok(tenancy.principal(root.id).await?)
}
