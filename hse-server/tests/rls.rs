//! The tenant wall in PostgreSQL itself (row-level security), tested with
//! the Rust layer bypassed: raw SQL as the application role on a freshly
//! migrated database, and the start-up check that refuses roles which
//! would not be bound by it.
//!
//! Needs PostgreSQL with a role allowed to create roles (`DATABASE_URL`,
//! e.g. `postgres://postgres@127.0.0.1:5432/postgres`, as scripts/services
//! prints).

use std::collections::BTreeSet;

use hse_core::postgres::{DbScope, app_pool, begin_in, scoped_tx};
use hse_core::{EstablishmentId, OrganizationId, PartnerCompanyId, Scope};
use hse_devices::postgres::PgEventStore;
use hse_server::backends::{check_app_role, migrate};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Two tenants, A (partner P) and B (partner Q), one of everything each.
struct World {
    partner_a: Uuid,
    org_a: Uuid,
    org_b: Uuid,
    est_a: Uuid,
    est_b: Uuid,
    area_b: Uuid,
    device_b: Uuid,
    user_a: Uuid,
    guest_a: Uuid,
    guest_b: Uuid,
    booking_b: Uuid,
}

impl World {
    /// Stores the world as the owner (a superuser here, which RLS does
    /// not bind), on a migrated database.
    async fn seed(owner: &PgPool) -> Self {
        let id = Uuid::now_v7;
        let w = Self {
            partner_a: id(),
            org_a: id(),
            org_b: id(),
            est_a: id(),
            est_b: id(),
            area_b: id(),
            device_b: id(),
            user_a: id(),
            guest_a: id(),
            guest_b: id(),
            booking_b: id(),
        };
        let (partner_b, area_a, device_a, user_b, booking_a) = (id(), id(), id(), id(), id());
        let admin = "00000000-0000-7000-8000-000000000003";
        let secret = "decode(repeat('00', 32), 'hex')";
        let sql = format!(
            "INSERT INTO partner_companies (id, name, created_at, updated_at) VALUES
                 ('{pa}', 'P', now(), now()), ('{partner_b}', 'Q', now(), now());
             INSERT INTO organizations (id, partner_company_id, name, created_at, updated_at) VALUES
                 ('{oa}', '{pa}', 'A', now(), now()), ('{ob}', '{partner_b}', 'B', now(), now());
             INSERT INTO establishments (id, organization_id, name, timezone, created_at, updated_at) VALUES
                 ('{ea}', '{oa}', 'eA', 'UTC', now(), now()), ('{eb}', '{ob}', 'eB', 'UTC', now(), now());
             INSERT INTO areas (id, establishment_id, name, type, created_at, updated_at) VALUES
                 ('{area_a}', '{ea}', 'rA', 'room', now(), now()), ('{ab}', '{eb}', 'rB', 'room', now(), now());
             INSERT INTO devices (id, establishment_id, area_id, device_type, protocol, secret_hash,
                                  created_at, updated_at) VALUES
                 ('{device_a}', '{ea}', '{area_a}', 'lock', 'hse-tcp', {secret}, now(), now()),
                 ('{db}', '{eb}', '{ab}', 'lock', 'hse-tcp', {secret}, now(), now());
             INSERT INTO users (id, email, first_name, role_id, organization_id, created_at, updated_at) VALUES
                 ('{ua}', 'a-{ua}@example.com', 'A', '{admin}', '{oa}', now(), now()),
                 ('{user_b}', 'b-{user_b}@example.com', 'B', '{admin}', '{ob}', now(), now());
             INSERT INTO user_establishments (user_id, establishment_id, organization_id, assigned_at) VALUES
                 ('{ua}', '{ea}', '{oa}', now()), ('{user_b}', '{eb}', '{ob}', now());
             INSERT INTO guests (id, organization_id, first_name, created_at, updated_at) VALUES
                 ('{ga}', '{oa}', 'GA', now(), now()), ('{gb}', '{ob}', 'GB', now(), now());
             INSERT INTO bookings (id, organization_id, establishment_id, area_id, guest_id, check_in,
                                   check_out, blocked_until, status, confirmation_code, total_guests,
                                   created_by, created_at, updated_at) VALUES
                 ('{booking_a}', '{oa}', '{ea}', '{area_a}', '{ga}', now(), now() + interval '1 day',
                  now() + interval '1 day', 'confirmed', 'ABCDEFGH', 1, '{ua}', now(), now()),
                 ('{bb}', '{ob}', '{eb}', '{ab}', '{gb}', now(), now() + interval '1 day',
                  now() + interval '1 day', 'confirmed', 'BCDEFGHJ', 1, '{user_b}', now(), now());
             INSERT INTO notifications (id, organization_id, booking_id, guest_id, kind, channel,
                                        recipient, subject, message, status, created_at) VALUES
                 ('{n1}', '{oa}', '{booking_a}', '{ga}', 'booking_confirmed', 'email', 'g@x', 's', 'm',
                  'pending', now()),
                 ('{n2}', '{ob}', '{bb}', '{gb}', 'booking_confirmed', 'email', 'g@x', 's', 'm',
                  'pending', now());
             SELECT hse_devices_ensure_partition((now() AT TIME ZONE 'UTC')::date);
             INSERT INTO device_events (time, device_id, event_id, event_type) VALUES
                 (now(), '{device_a}', '{e1}', 'temperature'), (now(), '{db}', '{e2}', 'temperature');
             INSERT INTO device_rollups_hourly VALUES ('{device_a}', 'temperature', now(), 1, 0, 0, NULL, NULL, 0);
             INSERT INTO device_rollups_daily VALUES ('{db}', 'temperature', now(), 1, 0, 0, NULL, NULL, 0);
             INSERT INTO auth_refresh_families (id, user_id, created_at, expires_at) VALUES
                 ('{f1}', '{ua}', now(), now() + interval '1 day');
             INSERT INTO auth_totp (user_id, sealed_secret, created_at) VALUES ('{ua}', '\\x00', now());",
            pa = w.partner_a,
            oa = w.org_a,
            ob = w.org_b,
            ea = w.est_a,
            eb = w.est_b,
            ab = w.area_b,
            db = w.device_b,
            ua = w.user_a,
            ga = w.guest_a,
            gb = w.guest_b,
            bb = w.booking_b,
            n1 = id(),
            n2 = id(),
            e1 = id(),
            e2 = id(),
            f1 = id(),
        );
        sqlx::raw_sql(&sql)
            .execute(owner)
            .await
            .expect("the world is stored");
        w
    }

    fn scope_a(&self) -> Scope {
        Scope::Organization {
            organization_id: OrganizationId::from(self.org_a),
            establishments: BTreeSet::from([EstablishmentId::from(self.est_a)]),
        }
    }

    fn scope_b(&self) -> Scope {
        Scope::Organization {
            organization_id: OrganizationId::from(self.org_b),
            establishments: BTreeSet::from([EstablishmentId::from(self.est_b)]),
        }
    }
}

/// The tables [`World::seed`] writes to.
const SEEDED: [&str; 16] = [
    "partner_companies",
    "organizations",
    "establishments",
    "areas",
    "devices",
    "users",
    "user_establishments",
    "guests",
    "bookings",
    "notifications",
    "device_events",
    "device_rollups_hourly",
    "device_rollups_daily",
    "auth_refresh_families",
    "auth_totp",
    "roles",
];

/// A migrated database, its world, and a pool of `size` as the
/// application role.
async fn setup(owner: &PgPool, size: u32) -> (World, PgPool) {
    migrate(owner).await.expect("migrations apply");
    let world = World::seed(owner).await;
    let app = app_pool(owner, size)
        .await
        .expect("the application role connects");
    (world, app)
}

/// Every table row-level security protects, by name.
async fn protected_tables(owner: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relrowsecurity AND relkind IN ('r', 'p')
           AND NOT relispartition AND relnamespace = 'public'::regnamespace ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap()
}

async fn count(conn: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Ids of `table` visible on `conn`.
async fn ids(conn: &mut PgConnection, table: &str) -> BTreeSet<Uuid> {
    sqlx::query_scalar(&format!("SELECT id FROM {table}"))
        .fetch_all(conn)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// The SQLSTATE of a statement that must fail.
async fn refused(conn: &mut PgConnection, sql: &str) -> String {
    let err = sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .expect_err(&format!("must be refused: {sql}"));
    err.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

#[sqlx::test(migrations = false)]
async fn a_query_without_a_scope_sees_no_row_of_any_tenant_table(owner: PgPool) {
    let (_world, app) = setup(&owner, 2).await;
    let tables = protected_tables(&owner).await;
    for expected in ["guests", "bookings", "device_events", "auth_totp", "users"] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} unprotected"
        );
    }
    let mut conn = app.acquire().await.unwrap();
    let mut owner_conn = owner.acquire().await.unwrap();
    for table in &tables {
        // Not inside a transaction, nor inside one that set no scope.
        assert_eq!(count(&mut conn, table).await, 0, "{table} without a scope");
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        assert_eq!(
            count(&mut tx, table).await,
            0,
            "{table} in a bare transaction"
        );
        tx.rollback().await.unwrap();
    }
    // While the rows are there (the owner, a superuser, sees them).
    for table in SEEDED {
        assert!(count(&mut owner_conn, table).await > 0, "{table} seeded");
    }
    // The scope `nothing` sees no tenant row either (system roles, which
    // belong to no tenant, are the one shared thing every set scope reads).
    let mut tx = scoped_tx(&app, &Scope::Nothing).await.unwrap();
    for table in tables.iter().filter(|t| *t != "roles") {
        assert_eq!(count(&mut tx, table).await, 0, "{table} in scope nothing");
    }
    tx.commit().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn one_pooled_connection_serving_tenant_a_then_b_never_shows_a_to_b(owner: PgPool) {
    let (w, app) = setup(&owner, 1).await;
    for _ in 0..3 {
        let mut a = scoped_tx(&app, &w.scope_a()).await.unwrap();
        assert_eq!(ids(&mut a, "guests").await, BTreeSet::from([w.guest_a]));
        assert_eq!(
            ids(&mut a, "establishments").await,
            BTreeSet::from([w.est_a])
        );
        a.commit().await.unwrap();

        let mut b = scoped_tx(&app, &w.scope_b()).await.unwrap();
        assert_eq!(ids(&mut b, "guests").await, BTreeSet::from([w.guest_b]));
        assert_eq!(ids(&mut b, "bookings").await, BTreeSet::from([w.booking_b]));
        assert_eq!(ids(&mut b, "devices").await, BTreeSet::from([w.device_b]));
        assert_eq!(count(&mut b, "device_events").await, 1);
        assert!(!ids(&mut b, "organizations").await.contains(&w.org_a));
        // A rolled-back transaction leaves no scope behind either.
        b.rollback().await.unwrap();

        // The same (only) connection, after both: no scope, nothing.
        let mut conn = app.acquire().await.unwrap();
        assert_eq!(count(&mut conn, "guests").await, 0);
        let leftover: Option<String> =
            sqlx::query_scalar("SELECT nullif(current_setting('hse.scope', true), '')")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(leftover, None, "the scope ended with its transaction");
    }
    // A partner sees its own tenant whole, and nothing of another.
    let partner = Scope::Partner {
        partner_company_id: PartnerCompanyId::from(w.partner_a),
    };
    let mut p = scoped_tx(&app, &partner).await.unwrap();
    assert_eq!(
        ids(&mut p, "organizations").await,
        BTreeSet::from([w.org_a])
    );
    assert_eq!(ids(&mut p, "guests").await, BTreeSet::from([w.guest_a]));
    assert_eq!(count(&mut p, "device_rollups_hourly").await, 1);
    assert_eq!(count(&mut p, "device_rollups_daily").await, 0);
    assert_eq!(
        count(&mut p, "auth_totp").await,
        0,
        "auth tables: system only"
    );
    p.commit().await.unwrap();
    // The system scope sees everything, auth tables included.
    let mut s = begin_in(&app, DbScope::System, "BEGIN").await.unwrap();
    assert_eq!(count(&mut s, "guests").await, 2);
    assert_eq!(count(&mut s, "auth_totp").await, 1);
    s.commit().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn writes_into_another_tenant_are_refused_by_the_policies(owner: PgPool) {
    let (w, app) = setup(&owner, 1).await;
    let mut tx = scoped_tx(&app, &w.scope_a()).await.unwrap();
    let now = "now(), now()";
    for insert in [
        format!(
            "INSERT INTO guests (id, organization_id, first_name, created_at, updated_at)
             VALUES ('{}', '{}', 'X', {now})",
            Uuid::now_v7(),
            w.org_b
        ),
        format!(
            "INSERT INTO establishments (id, organization_id, name, timezone, created_at, updated_at)
             VALUES ('{}', '{}', 'X', 'UTC', {now})",
            Uuid::now_v7(),
            w.org_b
        ),
        format!(
            "INSERT INTO areas (id, establishment_id, name, type, created_at, updated_at)
             VALUES ('{}', '{}', 'X', 'room', {now})",
            Uuid::now_v7(),
            w.est_b
        ),
        format!(
            "INSERT INTO device_events (time, device_id, event_id, event_type)
             VALUES (now(), '{}', '{}', 'temperature')",
            w.device_b,
            Uuid::now_v7()
        ),
        format!(
            "INSERT INTO auth_refresh_families (id, user_id, created_at, expires_at)
             VALUES ('{}', '{}', now(), now() + interval '1 day')",
            Uuid::now_v7(),
            w.user_a
        ),
    ] {
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await.unwrap();
        assert_eq!(refused(&mut savepoint, &insert).await, "42501", "{insert}");
        savepoint.rollback().await.unwrap();
    }
    // Moving an own row into the other tenant is refused (WITH CHECK)...
    let moved = format!(
        "UPDATE guests SET organization_id = '{}' WHERE id = '{}'",
        w.org_b, w.guest_a
    );
    let mut savepoint = sqlx::Connection::begin(&mut *tx).await.unwrap();
    assert_eq!(refused(&mut savepoint, &moved).await, "42501", "{moved}");
    savepoint.rollback().await.unwrap();
    // ...and the other tenant's rows cannot be updated or deleted: they
    // are not there.
    for write in [
        format!(
            "UPDATE bookings SET special_requests = 'x' WHERE id = '{}'",
            w.booking_b
        ),
        format!("UPDATE areas SET name = 'x' WHERE id = '{}'", w.area_b),
        format!("DELETE FROM guests WHERE id = '{}'", w.guest_b),
        format!(
            "DELETE FROM device_events WHERE device_id = '{}'",
            w.device_b
        ),
    ] {
        let done = sqlx::query(&write).execute(&mut *tx).await.unwrap();
        assert_eq!(done.rows_affected(), 0, "{write}");
    }
    tx.commit().await.unwrap();
    let untouched: (String, i64) = sqlx::query_as(
        "SELECT (SELECT special_requests FROM bookings WHERE id = $1),
                (SELECT count(*) FROM guests WHERE id = $2)",
    )
    .bind(w.booking_b)
    .bind(w.guest_b)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(untouched, (String::new(), 1));
}

/// A login role `name` with `attributes`, a member of the application
/// group; created once per cluster.
async fn role(owner: &PgPool, name: &str, attributes: &str) -> PgConnectOptions {
    let sql = format!(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                 CREATE ROLE {name} LOGIN {attributes} IN ROLE hse_app_group;
             END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$"
    );
    sqlx::raw_sql(&sql).execute(owner).await.unwrap();
    owner
        .connect_options()
        .as_ref()
        .clone()
        .username(name)
        .password("")
}

async fn problems_as(options: PgConnectOptions) -> String {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let verdict = check_app_role(&pool).await;
    pool.close().await;
    match verdict {
        Ok(()) => String::new(),
        Err(e) => format!("{e:#}"),
    }
}

#[sqlx::test(migrations = false)]
async fn the_start_up_check_refuses_roles_that_rls_would_not_bind(owner: PgPool) {
    let (_world, app) = setup(&owner, 1).await;
    check_app_role(&app)
        .await
        .expect("the application role is fit");
    app.close().await;
    let app_options = owner
        .connect_options()
        .as_ref()
        .clone()
        .username(hse_core::postgres::APP_LOGIN_ROLE)
        .password("");

    let superuser = format!("{:#}", check_app_role(&owner).await.unwrap_err());
    assert!(superuser.contains("superuser"), "{superuser}");

    let bypass = role(&owner, "hse_test_bypassrls", "NOSUPERUSER BYPASSRLS").await;
    let refused = problems_as(bypass).await;
    assert!(refused.contains("BYPASSRLS"), "{refused}");

    let owning = role(&owner, "hse_test_table_owner", "NOSUPERUSER NOBYPASSRLS").await;
    sqlx::query("ALTER TABLE guests OWNER TO hse_test_table_owner")
        .execute(&owner)
        .await
        .unwrap();
    let refused = problems_as(owning).await;
    assert!(
        refused.contains("owns") && refused.contains("guests"),
        "{refused}"
    );
    sqlx::query("ALTER TABLE guests OWNER TO CURRENT_USER")
        .execute(&owner)
        .await
        .unwrap();

    sqlx::query("ALTER TABLE bookings NO FORCE ROW LEVEL SECURITY")
        .execute(&owner)
        .await
        .unwrap();
    let refused = problems_as(app_options.clone()).await;
    assert!(
        refused.contains("without forced row-level security: bookings"),
        "{refused}"
    );
    sqlx::query("ALTER TABLE bookings FORCE ROW LEVEL SECURITY")
        .execute(&owner)
        .await
        .unwrap();
    assert_eq!(problems_as(app_options).await, "");
}

#[sqlx::test(migrations = false)]
async fn the_start_up_check_refuses_an_unmigrated_database(owner: PgPool) {
    hse_core::postgres::ensure_app_login_role(&owner)
        .await
        .unwrap();
    let app = app_pool(&owner, 1).await.unwrap();
    let refused = format!("{:#}", check_app_role(&app).await.unwrap_err());
    assert!(refused.contains("not migrated"), "{refused}");
    app.close().await;
}

/// `batches` batches of `size` events stored through `store`; events/s.
async fn ingest_rate(store: &PgEventStore, batches: usize, size: usize) -> f64 {
    use hse_devices::writer::EventSink;
    let device = hse_core::DeviceId::new();
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let kind = hse_devices::EventType::parse("temperature").unwrap();
    let started = std::time::Instant::now();
    for b in 0..batches {
        let events: Vec<_> = (0..size)
            .map(|i| hse_devices::Event {
                event_id: Uuid::now_v7(),
                device_id: device,
                ts_ms: base + i64::try_from(b * size + i).unwrap(),
                event_type: kind.clone(),
                value: Some(1.0),
                unit: None,
                metadata: None,
                source: Some("bench".into()),
            })
            .collect();
        assert_eq!(store.store(&events).await.unwrap(), size as u64);
    }
    (batches * size) as f64 / started.elapsed().as_secs_f64()
}

/// What row-level security costs the ingest writer: batches stored as the
/// application role (policies evaluated; the system scope short-circuits
/// them) against the same batches as the owner, a superuser that RLS does
/// not bind, alternating rounds on one database. Prints the figures; run
/// with `-- --ignored --nocapture`.
#[sqlx::test(migrations = false)]
#[ignore = "a measurement, not a check"]
async fn ingest_cost_of_row_level_security(owner: PgPool) {
    let (_world, app) = setup(&owner, 2).await;
    let as_app = PgEventStore::new(app.clone());
    let as_owner = PgEventStore::new(owner.clone());
    let (batches, size) = (40, 1000);
    ingest_rate(&as_app, 5, size).await;
    ingest_rate(&as_owner, 5, size).await;
    let (mut app_rates, mut owner_rates) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        app_rates.push(ingest_rate(&as_app, batches, size).await);
        owner_rates.push(ingest_rate(&as_owner, batches, size).await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, o) = (median(&mut app_rates), median(&mut owner_rates));
    println!(
        "ingest, {batches} batches of {size} per round, 5 rounds (median): \
         app role with RLS {a:.0} events/s, owner without RLS {o:.0} events/s, ratio {:.3}",
        a / o
    );
    // The scoped transaction itself: BEGIN + set_config in one round trip,
    // then COMMIT, against a bare statement.
    let rounds = 2000;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        begin_in(&app, DbScope::System, "BEGIN")
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
    }
    let scoped = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        sqlx::query("SELECT 1").execute(&app).await.unwrap();
    }
    let bare = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("scoped transaction open+commit {scoped:.0} µs; one bare statement {bare:.0} µs");
}
