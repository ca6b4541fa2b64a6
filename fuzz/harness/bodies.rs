//! The API's JSON request bodies under adversarial input, shared by the
//! `api_bodies` cargo-fuzz target and the stable proptests in
//! `hse-server/tests/api/adversarial.rs` (both include this file).
//!
//! [`judge`] runs bytes through what a handler runs: the body's serde
//! parse (a failure is the API's 400 naming `body`), then the validation
//! of the model (`New*::build`, `*Patch::apply`, the booking checks and
//! stay resolution), whose failure is a typed `Invalid` naming a field.
//! It panics, failing the fuzz run or the proptest, when anything else
//! happens: a panic inside the crates, an untyped error, a parsed body
//! that does not survive a serialize/parse round trip, or a refused patch
//! that changed its entity.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use hse_booking::BookingError;
use hse_booking::model::{
    BookingPatch, GuestPatch, NewBooking, NewGuest, Owner, Stay, check_requests, check_total_guests,
};
use hse_booking::window::{BookingWindow, StayTimes, Turnover};
use hse_core::CoreError;
use hse_core::invitation::{Acceptance, NewInvitation};
use hse_core::model::{
    AreaPatch, DevicePatch, EstablishmentPatch, NewArea, NewDevice, NewEstablishment,
    NewOrganization, NewPartnerCompany, NewUser, OrganizationPatch, PartnerCompanyPatch, UserPatch,
};
use hse_core::role::NewRole;
use hse_core::value::{Timezone, optional_text, text};
use hse_core::{EstablishmentId, OrganizationId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A request body type the API accepts (hse-core and hse-booking inputs;
/// the server's own small wrappers are driven through the router).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    NewPartnerCompany,
    PartnerCompanyPatch,
    NewOrganization,
    OrganizationPatch,
    NewEstablishment,
    EstablishmentPatch,
    NewArea,
    AreaPatch,
    NewDevice,
    DevicePatch,
    NewUser,
    UserPatch,
    NewRole,
    NewInvitation,
    Acceptance,
    NewGuest,
    GuestPatch,
    NewBooking,
    BookingPatch,
}

/// Every [`Body`].
pub(crate) const BODIES: [Body; 19] = [
    Body::NewPartnerCompany,
    Body::PartnerCompanyPatch,
    Body::NewOrganization,
    Body::OrganizationPatch,
    Body::NewEstablishment,
    Body::EstablishmentPatch,
    Body::NewArea,
    Body::AreaPatch,
    Body::NewDevice,
    Body::DevicePatch,
    Body::NewUser,
    Body::UserPatch,
    Body::NewRole,
    Body::NewInvitation,
    Body::Acceptance,
    Body::NewGuest,
    Body::GuestPatch,
    Body::NewBooking,
    Body::BookingPatch,
];

/// What became of one input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a body of this type: the API answers 400 naming `body`.
    Malformed,
    /// A body refused by validation naming this field (400 `invalid_input`).
    Invalid(&'static str),
    /// A body the model accepts (the service may still refuse it for what
    /// it refers to: an unknown id, a conflict, a permission).
    Valid,
}

/// The time zone stays in dates resolve in (the test establishment's).
pub(crate) const ZONE: &str = "Europe/Madrid";

/// Ids a valid body refers to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ids {
    pub(crate) partner_company: uuid::Uuid,
    pub(crate) organization: uuid::Uuid,
    pub(crate) establishment: uuid::Uuid,
    pub(crate) area: uuid::Uuid,
    pub(crate) role: uuid::Uuid,
    pub(crate) guest: uuid::Uuid,
}

impl Ids {
    /// Fresh random ids (for the pure checks, which never look them up).
    pub(crate) fn random() -> Self {
        Self {
            partner_company: uuid::Uuid::new_v4(),
            organization: uuid::Uuid::new_v4(),
            establishment: uuid::Uuid::new_v4(),
            area: uuid::Uuid::new_v4(),
            role: uuid::Uuid::new_v4(),
            guest: uuid::Uuid::new_v4(),
        }
    }
}

/// A valid body of `body` about `ids`: the seed that structure-aware
/// mutations start from.
pub(crate) fn example(body: Body, ids: &Ids) -> Value {
    let meta = json!({"floor_plan": "B", "beds": 2, "tags": ["sea", 1.5, null]});
    match body {
        Body::NewPartnerCompany => {
            json!({"name": "Reseller", "contact_email": "ops@reseller.example",
            "contact_phone": "+34 600", "address": "Calle 1"})
        }
        Body::PartnerCompanyPatch => json!({"name": "Renamed", "is_active": true}),
        Body::NewOrganization => {
            json!({"partner_company_id": ids.partner_company, "name": "Hoteles",
            "industry": "hospitality", "contact_email": "a@b.example"})
        }
        Body::OrganizationPatch => json!({"industry": "education", "address": "Plaza 2"}),
        Body::NewEstablishment => json!({"organization_id": ids.organization, "name": "Hotel Sol",
            "timezone": ZONE, "location": {"lat": 40.4, "lon": -3.7}, "metadata": meta}),
        Body::EstablishmentPatch => json!({"name": "Hotel Luna", "timezone": "UTC",
            "location": {"lat": -33.9, "lon": 151.2}}),
        Body::NewArea => json!({"establishment_id": ids.establishment, "name": "Room 101",
            "type": "room", "floor": 1, "metadata": meta}),
        Body::AreaPatch => json!({"name": "Room 102", "floor": 2}),
        Body::NewDevice => json!({"area_id": ids.area, "device_type": "doorlock",
            "protocol": "hse-tcp", "mac_address": "AA:BB:CC:DD:EE:FF", "model": "L1"}),
        Body::DevicePatch => json!({"model": "L2", "status": "maintenance"}),
        Body::NewUser => json!({"email": "new.user@example.com", "first_name": "Ana",
            "last_name": "Ruiz", "role_id": ids.role, "organization_id": ids.organization}),
        Body::UserPatch => json!({"first_name": "Eva", "last_name": ""}),
        Body::NewRole => json!({"name": "Cleaner", "description": "rooms", "hierarchy": 7,
            "organization_id": ids.organization, "permissions": ["read_booking"]}),
        Body::NewInvitation => json!({"email": "invitee@example.com", "role_id": ids.role,
            "target": {"kind": "organization", "id": ids.organization}}),
        Body::Acceptance => json!({"first_name": "Ana", "password": "a long enough passphrase"}),
        Body::NewGuest => json!({"organization_id": ids.organization, "first_name": "Luis",
            "email": "luis@example.com", "country": "ES", "metadata": meta}),
        Body::GuestPatch => json!({"phone": "+34 611", "document_type": "passport"}),
        Body::NewBooking => json!({"area_id": ids.area, "guest_id": ids.guest,
            "stay": {"arrival": "2031-03-28", "departure": "2031-03-31"},
            "total_guests": 2, "special_requests": "late arrival"}),
        Body::BookingPatch => json!({"stay": {"check_in": "2031-05-01T14:00:00Z",
            "check_out": "2031-05-03T10:00:00+02:00"}, "total_guests": 3}),
    }
}

/// The instant the checks run at.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap_or_default()
}

/// Runs `bytes` as a body of type `body` through parse and validation.
///
/// # Panics
/// On any outcome other than a [`Verdict`] (see the module docs).
pub(crate) fn judge(body: Body, bytes: &[u8]) -> Verdict {
    let verdict = match body {
        Body::NewPartnerCompany => parse::<NewPartnerCompany>(bytes).map(|v| core(v.build(now()))),
        Body::PartnerCompanyPatch => parse::<PartnerCompanyPatch>(bytes).map(|p| {
            let mut e = fixtures::partner_company();
            patched(&mut e, |e| p.apply(e, now()).map_err(core_field))
        }),
        Body::NewOrganization => parse::<NewOrganization>(bytes).map(|v| core(v.build(now()))),
        Body::OrganizationPatch => parse::<OrganizationPatch>(bytes).map(|p| {
            let mut e = fixtures::organization();
            patched(&mut e, |e| p.apply(e, now()).map_err(core_field))
        }),
        Body::NewEstablishment => parse::<NewEstablishment>(bytes).map(|v| core(v.build(now()))),
        Body::EstablishmentPatch => parse::<EstablishmentPatch>(bytes).map(|p| {
            let mut e = fixtures::establishment();
            patched(&mut e, |e| p.apply(e, now()).map_err(core_field))
        }),
        Body::NewArea => parse::<NewArea>(bytes).map(|v| core(v.build(now()))),
        Body::AreaPatch => parse::<AreaPatch>(bytes).map(|p| {
            let mut e = fixtures::area();
            patched(&mut e, |e| p.apply(e, now()).map_err(core_field))
        }),
        Body::NewDevice => {
            parse::<NewDevice>(bytes).map(|v| core(v.build(EstablishmentId::new(), now())))
        }
        Body::DevicePatch => parse::<DevicePatch>(bytes).map(|p| {
            let mut e = fixtures::device();
            patched(&mut e, |e| p.apply(e, now()).map_err(core_field))
        }),
        Body::NewUser => parse::<NewUser>(bytes).map(|v| core(v.build(None, false, now()))),
        Body::UserPatch => parse::<UserPatch>(bytes).map(|p| {
            let mut e = fixtures::user();
            patched(&mut e, |e| p.apply(e, now()).map_err(core_field))
        }),
        Body::NewRole => parse::<NewRole>(bytes).map(|r| role(&r)),
        Body::NewInvitation => parse::<NewInvitation>(bytes).map(|_| Verdict::Valid),
        Body::Acceptance => parse_only::<Acceptance>(bytes).map(|a| acceptance(&a)),
        Body::NewGuest => {
            parse::<NewGuest>(bytes).map(|g| booking(g.build(fixtures::owner(), now())))
        }
        Body::GuestPatch => parse::<GuestPatch>(bytes).map(|p| {
            let mut e = fixtures::guest();
            patched(&mut e, |e| p.apply(e, now()).map_err(booking_field))
        }),
        Body::NewBooking => parse::<NewBooking>(bytes).map(|b| booking(new_booking(&b))),
        Body::BookingPatch => parse::<BookingPatch>(bytes).map(|p| booking(booking_patch(&p))),
    };
    verdict.unwrap_or(Verdict::Malformed)
}

/// Parses `bytes` as `T` and checks that it survives a round trip.
fn parse<T>(bytes: &[u8]) -> Result<T, ()>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let value: T = parse_only(bytes)?;
    let text = serde_json::to_vec(&value).expect("a parsed body serializes");
    let back: T = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{value:?} serialized as {} does not parse back: {e}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(
        back,
        value,
        "round trip through {}",
        String::from_utf8_lossy(&text)
    );
    Ok(value)
}

fn parse_only<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ()> {
    serde_json::from_slice(bytes).map_err(|_| ())
}

/// Applies a patch to `entity`; a refused patch must leave it untouched.
fn patched<E: Clone + PartialEq + Debug>(
    entity: &mut E,
    apply: impl FnOnce(&mut E) -> Result<(), &'static str>,
) -> Verdict {
    let before = entity.clone();
    match apply(entity) {
        Ok(()) => Verdict::Valid,
        Err(field) => {
            assert_eq!(*entity, before, "a refused patch changed the entity");
            Verdict::Invalid(field)
        }
    }
}

fn core_field(e: CoreError) -> &'static str {
    match e {
        CoreError::Invalid { field, .. } => field,
        other => panic!("validation failed with an untyped error: {other:?}"),
    }
}

fn booking_field(e: BookingError) -> &'static str {
    match e {
        BookingError::Invalid { field, .. } => field,
        other => panic!("validation failed with an untyped error: {other:?}"),
    }
}

fn core<T>(result: Result<T, CoreError>) -> Verdict {
    result.map_or_else(|e| Verdict::Invalid(core_field(e)), |_| Verdict::Valid)
}

fn booking<T>(result: Result<T, BookingError>) -> Verdict {
    result.map_or_else(|e| Verdict::Invalid(booking_field(e)), |_| Verdict::Valid)
}

/// The field checks `Tenancy::create_role` runs before it looks anything up.
fn role(r: &NewRole) -> Verdict {
    let checks =
        text("name", &r.name, 100).and_then(|_| optional_text("description", &r.description, 500));
    core(checks)
}

/// The checks accepting an invitation runs on the answer: the names (as
/// the new user's) and the password policy.
fn acceptance(a: &Acceptance) -> Verdict {
    let names = text("first_name", &a.first_name, 100)
        .and_then(|_| optional_text("last_name", &a.last_name, 100));
    if let Err(e) = names {
        return Verdict::Invalid(core_field(e));
    }
    match hse_auth::password::check_policy(&a.password) {
        Ok(()) => Verdict::Valid,
        Err(hse_auth::AuthError::WeakPassword { .. }) => Verdict::Invalid("password"),
        Err(other) => panic!("password policy failed with an untyped error: {other:?}"),
    }
}

/// The window of a stay, as `Bookings` resolves it with default policy.
fn window(stay: Stay) -> Result<BookingWindow, BookingError> {
    let zone = Timezone::parse(ZONE).expect("the zone parses");
    stay.window(zone.tz(), &StayTimes::default())
}

/// What `Bookings::create_booking` checks of the request itself.
fn new_booking(b: &NewBooking) -> Result<(), BookingError> {
    let w = window(b.stay)?;
    let _blocked_until = Turnover::default().blocked_until(&w);
    check_requests(&b.special_requests)?;
    check_total_guests(b.total_guests)?;
    Ok(())
}

/// What `Bookings::modify` checks of the patch itself.
fn booking_patch(p: &BookingPatch) -> Result<(), BookingError> {
    if let Some(stay) = p.stay {
        let w = window(stay)?;
        let _blocked_until = Turnover::default().blocked_until(&w);
    }
    if let Some(r) = &p.special_requests {
        check_requests(r)?;
    }
    if let Some(n) = p.total_guests {
        check_total_guests(n)?;
    }
    Ok(())
}

mod fixtures {
    //! One valid entity of each kind, for patches to apply to.
    use super::*;
    use hse_booking::Guest;
    use hse_core::model::{Area, Device, Establishment, Organization, PartnerCompany, User};

    fn from<T: DeserializeOwned, E: Debug>(
        v: Value,
        build: impl FnOnce(T) -> Result<E, CoreError>,
    ) -> E {
        let input: T = serde_json::from_value(v).expect("fixture parses");
        build(input).expect("fixture builds")
    }

    pub(super) fn partner_company() -> PartnerCompany {
        from(
            example(Body::NewPartnerCompany, &Ids::random()),
            |v: NewPartnerCompany| v.build(now()),
        )
    }
    pub(super) fn organization() -> Organization {
        from(
            example(Body::NewOrganization, &Ids::random()),
            |v: NewOrganization| v.build(now()),
        )
    }
    pub(super) fn establishment() -> Establishment {
        from(
            example(Body::NewEstablishment, &Ids::random()),
            |v: NewEstablishment| v.build(now()),
        )
    }
    pub(super) fn area() -> Area {
        from(example(Body::NewArea, &Ids::random()), |v: NewArea| {
            v.build(now())
        })
    }
    pub(super) fn device() -> Device {
        from(example(Body::NewDevice, &Ids::random()), |v: NewDevice| {
            v.build(EstablishmentId::new(), now())
        })
    }
    pub(super) fn user() -> User {
        from(example(Body::NewUser, &Ids::random()), |v: NewUser| {
            v.build(None, true, now())
        })
    }
    pub(super) fn owner() -> Owner {
        Owner {
            partner_company_id: None,
            organization_id: OrganizationId::new(),
        }
    }
    pub(super) fn guest() -> Guest {
        let new: NewGuest = serde_json::from_value(example(Body::NewGuest, &Ids::random()))
            .expect("fixture parses");
        new.build(owner(), now()).expect("fixture builds")
    }
}
