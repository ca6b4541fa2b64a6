//! Shared set-up: a tenant (organization, establishment in Madrid, a
//! building with rooms, door locks), an admin principal, a guest, and the
//! booking service on either adapter.
//!
//! Tenancy comes from hse-core's store of the same kind (memory, or
//! PostgreSQL on the same database, so the booking schema's composite
//! foreign keys meet real rows).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use hse_booking::model::{NewBooking, NewGuest, Stay};
use hse_booking::{Booking, BookingStore, Bookings, BookingsConfig, Guest, MemoryBookingStore};
use hse_core::model::{NewArea, NewDevice, NewEstablishment, NewOrganization, NewPartnerCompany};
use hse_core::value::{Email, Metadata, Timezone};
use hse_core::{
    AreaId, DeviceId, Establishment, OrganizationId, PartnerCompanyId, Principal, Scope, Secret,
    SystemRole, TenancyStore, UserId,
};
use sqlx::PgPool;

/// Runs one async test body on both adapters.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(crate::support::World::memory().await).await;
            }

            #[sqlx::test(migrations = false)]
            async fn postgres(pool: sqlx::PgPool) {
                super::$name(crate::support::World::postgres(pool).await).await;
            }
        }
    };
}
pub(crate) use both;

/// The start of test time.
pub(crate) fn t0() -> DateTime<Utc> {
    "2030-06-01T00:00:00Z".parse().unwrap()
}

/// `h` hours after [`t0`].
pub(crate) fn at(h: i64) -> DateTime<Utc> {
    t0() + Duration::hours(h)
}

/// Everything a test needs.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) tenancy: Arc<dyn TenancyStore>,
    pub(crate) store: Arc<dyn BookingStore>,
    pub(crate) service: Bookings,
    pub(crate) admin: Principal,
    pub(crate) partner: PartnerCompanyId,
    pub(crate) est: Establishment,
    /// A building with no lock of its own unless [`World::building_lock`].
    pub(crate) building: AreaId,
    /// Rooms inside the building, each with its own lock.
    pub(crate) rooms: Vec<AreaId>,
    pub(crate) room_locks: Vec<DeviceId>,
    pub(crate) guest: Guest,
    pub(crate) pool: Option<PgPool>,
}

impl World {
    pub(crate) async fn memory() -> Self {
        Self::with_rooms(None, 3, true).await
    }

    pub(crate) async fn postgres(pool: PgPool) -> Self {
        Self::with_rooms(Some(pool), 3, true).await
    }

    pub(crate) async fn with_rooms(pool: Option<PgPool>, rooms: usize, room_locks: bool) -> Self {
        match pool {
            None => {
                let tenancy = Arc::new(hse_core::memory::MemoryTenancyStore::new());
                Self::build(
                    Arc::new(MemoryBookingStore::new()),
                    tenancy,
                    None,
                    rooms,
                    room_locks,
                )
                .await
            }
            Some(pool) => {
                hse_core::postgres::migrate(&pool).await.unwrap();
                hse_booking::postgres::migrate(&pool).await.unwrap();
                // The stores connect as the application role, so row-level
                // security is exercised; `pool` (the owner) stays for checks.
                let app = hse_core::postgres::app_pool(&pool, 8).await.unwrap();
                let store = Arc::new(hse_booking::postgres::PgBookingStore::new(app.clone()));
                let tenancy = Arc::new(hse_core::postgres::PgTenancyStore::new(app));
                Self::build(store, tenancy, Some(pool), rooms, room_locks).await
            }
        }
    }

    async fn build(
        store: Arc<dyn BookingStore>,
        tenancy: Arc<dyn TenancyStore>,
        pool: Option<PgPool>,
        rooms: usize,
        room_locks: bool,
    ) -> Self {
        let now = Utc::now();
        let partner = NewPartnerCompany {
            name: "Reseller".into(),
            ..Default::default()
        }
        .build(now)
        .unwrap();
        tenancy
            .insert_partner_company(&Scope::Platform, &partner)
            .await
            .unwrap();
        let org = NewOrganization {
            partner_company_id: Some(partner.id),
            name: "Hoteles".into(),
            ..Default::default()
        }
        .build(now)
        .unwrap();
        tenancy
            .insert_organization(&Scope::Platform, &org)
            .await
            .unwrap();
        let est = NewEstablishment {
            organization_id: org.id,
            name: "Hotel Sol".into(),
            address: String::new(),
            location: None,
            timezone: Timezone::parse("Europe/Madrid").unwrap(),
            metadata: Metadata::default(),
        }
        .build(now)
        .unwrap();
        tenancy
            .insert_establishment(&Scope::Platform, &est, None)
            .await
            .unwrap();
        let mut w = Self {
            admin: admin(org.id, est.id),
            partner: partner.id,
            service: Bookings::new(store.clone(), tenancy.clone(), BookingsConfig::default()),
            tenancy,
            store,
            est,
            building: AreaId::new(),
            rooms: Vec::new(),
            room_locks: Vec::new(),
            guest: placeholder_guest(),
            pool,
        };
        w.service = Bookings::new(
            w.store.clone(),
            w.tenancy.clone(),
            BookingsConfig::default(),
        );
        w.building = w.add_area(None, "Building").await;
        for i in 0..rooms {
            let room = w.add_area(Some(w.building), &format!("Room {i}")).await;
            w.rooms.push(room);
            if room_locks {
                let lock = w.add_lock(room, serde_json::json!({})).await;
                w.room_locks.push(lock);
            }
        }
        w.guest = w.new_guest("Ana", Some("ana@example.com")).await;
        w
    }

    pub(crate) async fn add_area(&self, parent: Option<AreaId>, name: &str) -> AreaId {
        let area = NewArea {
            establishment_id: self.est.id,
            parent_area_id: parent,
            name: name.into(),
            kind: "room".into(),
            floor: None,
            metadata: Metadata::default(),
        }
        .build(Utc::now())
        .unwrap();
        self.tenancy
            .insert_area(&Scope::Platform, &area)
            .await
            .unwrap();
        area.id
    }

    /// A door lock in `area` with `metadata` (e.g. `max_active_codes`).
    pub(crate) async fn add_lock(&self, area: AreaId, metadata: serde_json::Value) -> DeviceId {
        let device = NewDevice {
            area_id: area,
            device_type: "doorlock".into(),
            manufacturer: String::new(),
            model: String::new(),
            serial_number: String::new(),
            mac_address: None,
            protocol: "tcp".into(),
            metadata: Metadata::parse(metadata).unwrap(),
        }
        .build(self.est.id, Utc::now())
        .unwrap();
        let secret = Secret::generate().unwrap().hash();
        self.tenancy
            .insert_device(&Scope::Platform, &device, secret)
            .await
            .unwrap();
        device.id
    }

    pub(crate) async fn new_guest(&self, name: &str, email: Option<&str>) -> Guest {
        let new = NewGuest {
            first_name: name.into(),
            email: email.map(|e| Email::parse(e).unwrap()),
            ..Default::default()
        };
        self.service
            .create_guest(&self.admin, new, Utc::now())
            .await
            .unwrap()
    }

    /// A booking request for `area` from hour `from` to hour `to`.
    pub(crate) fn request(&self, area: AreaId, from: i64, to: i64) -> NewBooking {
        NewBooking {
            area_id: area,
            guest_id: self.guest.id,
            stay: Stay::Instants {
                check_in: at(from),
                check_out: at(to),
            },
            total_guests: 2,
            special_requests: String::new(),
            metadata: Metadata::default(),
        }
    }

    /// A pending booking of `area` from hour `from` to hour `to`.
    pub(crate) async fn book(&self, area: AreaId, from: i64, to: i64) -> Booking {
        let request = self.request(area, from, to);
        self.service
            .create_booking(&self.admin, request, Utc::now())
            .await
            .unwrap()
    }

    /// The service with another configuration or code source.
    pub(crate) fn service_with(&self, config: BookingsConfig) -> Bookings {
        Bookings::new(self.store.clone(), self.tenancy.clone(), config)
    }
}

/// An admin of `org` assigned to `est`.
pub(crate) fn admin(org: OrganizationId, est: hse_core::EstablishmentId) -> Principal {
    Principal {
        user_id: UserId::new(),
        role_id: SystemRole::Admin.id(),
        hierarchy: SystemRole::Admin.hierarchy(),
        partner_company_id: None,
        organization_id: Some(org),
        permissions: SystemRole::Admin.default_permissions(),
        establishments: BTreeMap::from([(est, BTreeSet::new())]),
    }
}

fn placeholder_guest() -> Guest {
    NewGuest {
        first_name: "placeholder".into(),
        ..Default::default()
    }
    .build(
        hse_booking::model::Owner {
            partner_company_id: None,
            organization_id: OrganizationId::new(),
        },
        Utc::now(),
    )
    .unwrap()
}

/// A log sink for a test's subscriber: everything written, kept in memory.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What was written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
