//! Guests and bookings over the API: conflicts name the booking in the
//! way, the gap is honoured to the minute, transitions follow the state
//! machine, codes and notifications appear on confirmation, and another
//! tenant sees nothing.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use hse_core::SystemRole;
use hse_server::backends::{self, Backends};
use serde_json::{Value, json};

use crate::client::{App, assert_problem};

/// One organization with its admin, a room and a door lock in it.
struct Tenant {
    admin: String,
    area: String,
    lock: String,
}

impl Tenant {
    async fn new(app: &App, root: &str, name: &str) -> Self {
        let org = app
            .post("/v1/organizations", root, json!({"name": name}))
            .await;
        assert_eq!(org.status, StatusCode::CREATED, "{}", org.body);
        let org_id = org.body["id"].as_str().unwrap().to_owned();
        let admin = app
            .onboard(
                root,
                &format!("admin@{}.example", name.to_lowercase()),
                &SystemRole::Admin.id().to_string(),
                json!({"kind": "organization", "id": org_id}),
            )
            .await;
        let est = app
            .post(
                "/v1/establishments",
                &admin,
                json!({"organization_id": org_id, "name": "Hotel", "timezone": "Europe/Madrid"}),
            )
            .await;
        let est_id = est.body["id"].as_str().unwrap();
        let area = app
            .post(
                "/v1/areas",
                &admin,
                json!({"establishment_id": est_id, "name": "Room 101", "type": "room"}),
            )
            .await;
        let area = area.body["id"].as_str().unwrap().to_owned();
        let lock = app
            .post(
                "/v1/devices",
                &admin,
                json!({"area_id": area, "device_type": "doorlock", "protocol": "hse-tcp"}),
            )
            .await;
        assert_eq!(lock.status, StatusCode::CREATED, "{}", lock.body);
        let lock = lock.body["id"].as_str().unwrap().to_owned();
        Self { admin, area, lock }
    }

    async fn guest(&self, app: &App, name: &str) -> String {
        let guest = app
            .post(
                "/v1/guests",
                &self.admin,
                json!({"first_name": name, "email": format!("{}@guest.example", name.to_lowercase())}),
            )
            .await;
        assert_eq!(guest.status, StatusCode::CREATED, "{}", guest.body);
        guest.body["id"].as_str().unwrap().to_owned()
    }

    /// Books the room from `check_in` to `check_out` (RFC 3339).
    async fn book(&self, app: &App, guest: &str, check_in: &str, check_out: &str) -> Value {
        let answer = app
            .post(
                "/v1/bookings",
                &self.admin,
                json!({"area_id": self.area, "guest_id": guest,
                       "stay": {"check_in": check_in, "check_out": check_out}}),
            )
            .await;
        json!({"status": answer.status.as_u16(), "body": answer.body})
    }
}

/// The booking workers of a server, on their own tracker.
struct Workers {
    tasks: tokio_util::task::TaskTracker,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Workers {
    fn start(config: &hse_server::Config, state: &hse_server::state::AppState) -> Self {
        let workers = Self {
            tasks: tokio_util::task::TaskTracker::new(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        };
        let (tasks, shutdown) = (&workers.tasks, &workers.shutdown);
        hse_server::bookings::spawn_workers(config, state, tasks, shutdown);
        workers
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn id(v: &Value) -> String {
    v["body"]["id"].as_str().expect("an id").to_owned()
}

/// Overlap → 409 naming the booking; back-to-back at the gap accepted.
async fn conflict_flow(app: &App) -> (Tenant, String) {
    let root = app.root_token().await;
    let tenant = Tenant::new(app, &root, "Alpha").await;
    let ana = tenant.guest(app, "Ana").await;
    let first = tenant
        .book(app, &ana, "2030-06-01T14:00:00Z", "2030-06-03T10:00:00Z")
        .await;
    assert_eq!(first["status"], 201, "{first}");
    assert_eq!(first["body"]["status"], "pending");
    let first_id = id(&first);

    let overlap = app
        .post(
            "/v1/bookings",
            &tenant.admin,
            json!({"area_id": tenant.area, "guest_id": ana,
                   "stay": {"check_in": "2030-06-02T14:00:00Z", "check_out": "2030-06-04T10:00:00Z"}}),
        )
        .await;
    assert_problem(&overlap, StatusCode::CONFLICT, "booking_conflict");
    assert_eq!(overlap.body["conflicting_booking_id"], first_id.as_str());

    let inside_gap = tenant
        .book(app, &ana, "2030-06-03T10:59:00Z", "2030-06-04T10:00:00Z")
        .await;
    assert_eq!(inside_gap["status"], 409, "{inside_gap}");
    let at_gap = tenant
        .book(app, &ana, "2030-06-03T11:00:00Z", "2030-06-04T10:00:00Z")
        .await;
    assert_eq!(at_gap["status"], 201, "back-to-back at the gap: {at_gap}");
    (tenant, first_id)
}

#[tokio::test]
async fn guests_are_created_read_patched_and_linked_both_ways() {
    let app = App::memory().await;
    let root = app.root_token().await;
    let tenant = Tenant::new(&app, &root, "Alpha").await;
    let ana = tenant.guest(&app, "Ana").await;
    let luis = tenant.guest(&app, "Luis").await;
    let patched = app
        .call(
            Method::PATCH,
            &format!("/v1/guests/{ana}"),
            Some(&tenant.admin),
            Some(json!({"country": "ES"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["country"], "ES");
    let linked = app
        .post(
            &format!("/v1/guests/{ana}/companions"),
            &tenant.admin,
            json!({"companion_id": luis, "relationship": "spouse"}),
        )
        .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
    let seen = app
        .get(&format!("/v1/guests/{luis}/companions"), &tenant.admin)
        .await;
    assert_eq!(seen.body["items"][0]["companion_id"], ana.as_str());
    let again = app
        .post(
            &format!("/v1/guests/{luis}/companions"),
            &tenant.admin,
            json!({"companion_id": ana, "relationship": "spouse"}),
        )
        .await;
    assert_problem(&again, StatusCode::CONFLICT, "already_exists");
    let nameless = app
        .post("/v1/guests", &tenant.admin, json!({"first_name": ""}))
        .await;
    assert_problem(&nameless, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(nameless.body["field"], "first_name");
    let listed = app.get("/v1/guests", &tenant.admin).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn overlaps_are_409_naming_the_booking_and_the_gap_is_honoured() {
    let app = App::memory().await;
    conflict_flow(&app).await;
}

#[sqlx::test(migrations = false)]
async fn overlaps_are_409_naming_the_booking_on_postgres(pool: sqlx::PgPool) {
    backends::migrate(&pool).await.expect("migrations apply");
    // As the application role, so row-level security binds every request.
    let app_role = hse_core::postgres::app_pool(&pool, 8).await.unwrap();
    backends::check_app_role(&app_role).await.unwrap();
    let app = App::new(Backends::from_parts(Some(app_role), None)).await;
    let (tenant, first) = conflict_flow(&app).await;
    let confirmed = app
        .post(
            &format!("/v1/bookings/{first}/confirm"),
            &tenant.admin,
            json!({}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let codes = app
        .get(
            &format!("/v1/bookings/{first}/doorlock-codes"),
            &tenant.admin,
        )
        .await;
    assert_eq!(codes.body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn confirm_and_cancel_follow_the_state_machine() {
    let app = App::memory().await;
    let (tenant, first) = conflict_flow(&app).await;
    let confirm = format!("/v1/bookings/{first}/confirm");
    let confirmed = app.post(&confirm, &tenant.admin, json!({})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["status"], "confirmed");
    let twice = app.post(&confirm, &tenant.admin, json!({})).await;
    assert_problem(
        &twice,
        StatusCode::UNPROCESSABLE_ENTITY,
        "illegal_transition",
    );
    assert!(
        twice.body["detail"].as_str().unwrap().contains("confirmed"),
        "{}",
        twice.body
    );

    // Cancel without a body, then with a reason on another booking.
    let cancel = format!("/v1/bookings/{first}/cancel");
    let cancelled = app
        .call(Method::POST, &cancel, Some(&tenant.admin), None)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = app
        .post(&cancel, &tenant.admin, json!({"reason": "twice"}))
        .await;
    assert_problem(
        &again,
        StatusCode::UNPROCESSABLE_ENTITY,
        "illegal_transition",
    );
    let null = app.post(&cancel, &tenant.admin, Value::Null).await;
    assert_problem(
        &null,
        StatusCode::UNPROCESSABLE_ENTITY,
        "illegal_transition",
    );
    let patch = app
        .call(
            Method::PATCH,
            &format!("/v1/bookings/{first}"),
            Some(&tenant.admin),
            Some(json!({"total_guests": 2})),
        )
        .await;
    assert_problem(
        &patch,
        StatusCode::UNPROCESSABLE_ENTITY,
        "illegal_transition",
    );
    let delete = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{first}"),
            Some(&tenant.admin),
            None,
        )
        .await;
    assert_problem(
        &delete,
        StatusCode::UNPROCESSABLE_ENTITY,
        "illegal_transition",
    );

    // The area is free again: a booking over the cancelled one fits.
    let ana = tenant.guest(&app, "Eva").await;
    let over = tenant
        .book(&app, &ana, "2030-06-01T14:00:00Z", "2030-06-02T10:00:00Z")
        .await;
    assert_eq!(over["status"], 201, "{over}");
    let moved = app
        .call(
            Method::PATCH,
            &format!("/v1/bookings/{}", id(&over)),
            Some(&tenant.admin),
            Some(json!({"total_guests": 3, "special_requests": "late arrival"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["total_guests"], 3);
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/v1/bookings/{}", id(&over)),
            Some(&tenant.admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn confirmation_issues_a_code_and_queues_notifications() {
    let app = App::memory().await;
    let (tenant, first) = conflict_flow(&app).await;
    let before = app
        .get(
            &format!("/v1/bookings/{first}/doorlock-codes"),
            &tenant.admin,
        )
        .await;
    assert_eq!(before.body["items"], json!([]));
    app.post(
        &format!("/v1/bookings/{first}/confirm"),
        &tenant.admin,
        json!({}),
    )
    .await;

    let codes = app
        .get(
            &format!("/v1/bookings/{first}/doorlock-codes"),
            &tenant.admin,
        )
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    let code = &codes.body["items"][0];
    assert_eq!(code["state"], "pending", "no lock is connected: {code}");
    assert_eq!(code["code"].as_str().map(str::len), Some(6), "{code}");
    // Valid from 30 minutes before check-in (the default early grace).
    assert_eq!(code["valid_from"], "2030-06-01T13:30:00Z");

    let sent = app
        .get(
            &format!("/v1/bookings/{first}/notifications"),
            &tenant.admin,
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let kinds: Vec<_> = sent.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["kind"].as_str().unwrap(), n["status"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("booking_confirmed", "pending")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("check_in_instructions", "pending")),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_read_only_key_sees_the_sync_state_but_not_the_pin() {
    let app = App::memory().await;
    let (tenant, first) = conflict_flow(&app).await;
    app.post(
        &format!("/v1/bookings/{first}/confirm"),
        &tenant.admin,
        json!({}),
    )
    .await;
    let key = app
        .post(
            "/v1/api-keys",
            &tenant.admin,
            json!({"name": "reports", "permissions": ["read_booking"]}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let key = key.body["api_key"].as_str().unwrap();
    let read = |path: String| {
        Request::get(path)
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap()
    };
    let codes = app
        .raw(read(format!("/v1/bookings/{first}/doorlock-codes")))
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    let code = &codes.body["items"][0];
    assert!(code["code"].is_null(), "{code}");
    assert_eq!(code["code_length"], 6);
    assert_eq!(code["state"], "pending");
    let sent = app
        .raw(read(format!("/v1/bookings/{first}/notifications")))
        .await;
    for n in sent.body["items"].as_array().unwrap() {
        let hidden = n["kind"] == "check_in_instructions";
        assert_eq!(n["message"].is_null(), hidden, "{n}");
    }
}

#[tokio::test]
async fn another_tenant_gets_404_for_every_booking_route() {
    let app = App::memory().await;
    let (tenant, first) = conflict_flow(&app).await;
    let root = app.root_token().await;
    let other = Tenant::new(&app, &root, "Beta").await;
    let guest = app.get("/v1/guests", &tenant.admin).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        (Method::GET, format!("/v1/bookings/{first}")),
        (Method::PATCH, format!("/v1/bookings/{first}")),
        (Method::DELETE, format!("/v1/bookings/{first}")),
        (Method::POST, format!("/v1/bookings/{first}/confirm")),
        (Method::POST, format!("/v1/bookings/{first}/cancel")),
        (Method::GET, format!("/v1/bookings/{first}/doorlock-codes")),
        (Method::GET, format!("/v1/bookings/{first}/notifications")),
        (Method::GET, format!("/v1/guests/{guest}")),
        (Method::PATCH, format!("/v1/guests/{guest}")),
        (Method::GET, format!("/v1/guests/{guest}/companions")),
        (
            Method::GET,
            format!(
                "/v1/areas/{}/availability?from=2030-06-01T00:00:00Z&to=2030-06-10T00:00:00Z",
                tenant.area
            ),
        ),
    ] {
        let body = matches!(method, Method::PATCH | Method::POST).then(|| json!({}));
        let answer = app
            .call(method.clone(), &path, Some(&other.admin), body)
            .await;
        assert_problem(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let other_guest = other.guest(&app, "Olga").await;
    let linked = app
        .post(
            &format!("/v1/guests/{guest}/companions"),
            &other.admin,
            json!({"companion_id": other_guest, "relationship": "friend"}),
        )
        .await;
    assert_problem(&linked, StatusCode::NOT_FOUND, "not_found");
    let theirs = app
        .post(
            "/v1/bookings",
            &other.admin,
            json!({"area_id": tenant.area, "guest_id": guest,
                   "stay": {"check_in": "2031-01-01T14:00:00Z", "check_out": "2031-01-02T10:00:00Z"}}),
        )
        .await;
    assert_problem(&theirs, StatusCode::NOT_FOUND, "not_found");
    let seen = app.get("/v1/bookings", &other.admin).await;
    assert_eq!(seen.body["items"], json!([]));
    let guests = app.get("/v1/guests", &other.admin).await;
    assert_eq!(guests.body["items"][0]["id"], other_guest.as_str());
    assert_eq!(guests.body["items"].as_array().map(Vec::len), Some(1));
    let still = app
        .get(&format!("/v1/bookings/{first}"), &tenant.admin)
        .await;
    assert_eq!(still.body["status"], "pending");
}

#[tokio::test]
async fn availability_lists_the_free_intervals_around_bookings_and_gaps() {
    let app = App::memory().await;
    let (tenant, _) = conflict_flow(&app).await;
    let path = format!(
        "/v1/areas/{}/availability?from=2030-05-31T00:00:00Z&to=2030-06-06T00:00:00Z",
        tenant.area
    );
    let free = app.get(&path, &tenant.admin).await;
    assert_eq!(free.status, StatusCode::OK, "{}", free.body);
    // Booked 06-01 14:00 → 06-03 10:00 and 06-03 11:00 → 06-04 10:00, each
    // holding the room one hour after check-out; a new stay must also
    // check out an hour before the next check-in.
    assert_eq!(
        free.body["free"],
        json!([
            {"from": "2030-05-31T00:00:00Z", "to": "2030-06-01T13:00:00Z"},
            {"from": "2030-06-04T11:00:00Z", "to": "2030-06-06T00:00:00Z"},
        ])
    );
    let backwards = app
        .get(
            &format!(
                "/v1/areas/{}/availability?from=2030-06-06T00:00:00Z&to=2030-06-01T00:00:00Z",
                tenant.area
            ),
            &tenant.admin,
        )
        .await;
    assert_problem(&backwards, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(backwards.body["field"], "to");
}

#[tokio::test]
async fn the_openapi_document_describes_the_booking_routes() {
    let app = App::memory().await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/v1/guests/{id}/companions",
        "/v1/areas/{id}/availability",
        "/v1/bookings/{id}/cancel",
        "/v1/bookings/{id}/doorlock-codes",
        "/v1/bookings/{id}/notifications",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Booking",
        "NewBooking",
        "Stay",
        "DoorCodeView",
        "BookingStatus",
    ] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
    assert!(
        schemas["Problem"]["properties"]
            .get("conflicting_booking_id")
            .is_some()
    );
}

#[tokio::test]
async fn the_workers_program_a_confirmed_code_on_a_connected_lock() {
    let mut state = None;
    let app = App::with_state(Backends::in_memory(), |s| state = Some(s.clone())).await;
    let state = state.expect("state");
    let (tenant, first) = conflict_flow(&app).await;

    // The lock is online: it acknowledges every command it receives.
    let lock: hse_core::DeviceId = tenant.lock.parse().unwrap();
    let mut session = state.connections.register(lock);
    let connections = state.connections.clone();
    let device = tokio::spawn(async move {
        let mut received = Vec::new();
        while let Some(command) = session.commands.recv().await {
            received.push((command.command_type.clone(), command.params.clone()));
            connections.resolve(hse_devices::codec::CommandResult {
                request_id: command.request_id,
                success: true,
                message: "ok".into(),
            });
            if received.len() == 2 {
                return received;
            }
        }
        received
    });
    let config = hse_server::Config::from_lookup(|_| None).unwrap();
    let workers = Workers::start(&config, &state);

    app.post(
        &format!("/v1/bookings/{first}/confirm"),
        &tenant.admin,
        json!({}),
    )
    .await;
    let codes = format!("/v1/bookings/{first}/doorlock-codes");
    let mut code = Value::Null;
    for _ in 0..50 {
        code = app.get(&codes, &tenant.admin).await.body["items"][0].clone();
        if code["state"] == "active" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(code["state"], "active", "{code}");

    // The lock reports the code opening the door; the use is counted.
    let used = |event_type: &str, code_id: &Value| hse_devices::Event {
        event_id: uuid::Uuid::now_v7(),
        device_id: lock,
        ts_ms: 0,
        event_type: hse_devices::EventType::parse(event_type).unwrap(),
        value: None,
        unit: None,
        metadata: json!({"code_id": code_id}).as_object().cloned(),
        source: None,
    };
    let unknown = json!(uuid::Uuid::now_v7());
    for (event_type, code_id, counted) in [
        ("code_used", &code["id"], true),
        ("code_rejected", &code["id"], false),
        ("code_used", &unknown, false),
    ] {
        let event = used(event_type, code_id);
        let recorded = hse_server::bookings::record_lock_event(&state.bookings, &event).await;
        assert_eq!(recorded.unwrap(), counted, "{event_type} {code_id}");
    }
    let seen = app.get(&codes, &tenant.admin).await;
    assert_eq!(seen.body["items"][0]["usage_count"], 1);

    // Cancelling takes the code off the lock again.
    app.post(
        &format!("/v1/bookings/{first}/cancel"),
        &tenant.admin,
        json!({}),
    )
    .await;
    let received = tokio::time::timeout(std::time::Duration::from_secs(10), device)
        .await
        .expect("the lock got both commands")
        .unwrap();
    assert_eq!(received[0].0, "program_code");
    assert_eq!(received[0].1["code"], code["code"]);
    assert_eq!(received[0].1["code_id"], code["id"]);
    assert_eq!(received[1].0, "remove_code");
    workers.stop().await;
}

/// A webhook endpoint: answers 204 to each signed POST and reports its
/// first line and signature.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::Receiver<(String, bool)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hse/notifications",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0; 64 * 1024];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let first = request.lines().next().unwrap_or_default().to_owned();
            let signed = request.to_lowercase().contains("x-hse-signature: sha256=");
            let _ = stream
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await;
            let _ = tx.send((first, signed)).await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn notifications_go_out_through_the_configured_webhook() {
    let (url, mut received) = webhook_receiver().await;
    let vars = [
        ("HSE_WEBHOOK_URL", url.as_str()),
        ("HSE_WEBHOOK_SECRET", "a shared secret of some length"),
    ];
    let config = hse_server::Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let mut state = None;
    let app = App::with_state(Backends::in_memory(), |s| {
        s.services_mut().bookings = hse_server::bookings::service(&config, &s.backends);
        state = Some(s.clone());
    })
    .await;
    let state = state.expect("state");
    let (tenant, first) = conflict_flow(&app).await;
    let workers = Workers::start(&config, &state);
    app.post(
        &format!("/v1/bookings/{first}/confirm"),
        &tenant.admin,
        json!({}),
    )
    .await;

    let path = format!("/v1/bookings/{first}/notifications");
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let items = app.get(&path, &tenant.admin).await.body["items"].clone();
        statuses = items
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["channel"].clone(), n["status"].clone()))
            .collect();
        if statuses.len() == 2 && statuses.iter().all(|(_, s)| s == "sent") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses,
        vec![(json!("webhook"), json!("sent")); 2],
        "confirmation and check-in instructions"
    );
    let (line, signed) = received.recv().await.unwrap();
    assert_eq!(line, "POST /hse/notifications HTTP/1.1");
    assert!(signed);
    workers.stop().await;
}
