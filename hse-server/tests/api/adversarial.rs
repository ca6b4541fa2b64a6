//! Adversarial request bodies (issue 8). Arbitrary bytes, arbitrary JSON
//! and structure-aware mutations of valid bodies, first through the pure
//! checks of `fuzz/harness/bodies.rs` (shared with the `api_bodies`
//! cargo-fuzz target: never a panic, a typed error naming a field, a round
//! trip for whatever parses), then through the real router as root: never
//! a 5xx or a dropped request, every refusal problem+json with a code, a
//! body the model cannot parse is 400 naming `body`, and a body it refuses
//! is never accepted.

#[path = "../../../fuzz/harness/bodies.rs"]
mod bodies;

use axum::body::Body as HttpBody;
use axum::http::{Method, Request, StatusCode};
use bodies::{BODIES, Body, Ids, Verdict, example, judge};
use hse_core::SystemRole;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use crate::client::{Answer, App};
use crate::isolation::id_of;

/// One edit of a JSON body.
#[derive(Clone, Debug)]
enum Edit {
    /// Set the n-th field (wrapping) to a value.
    Set(usize, Value),
    /// Remove the n-th field.
    Remove(usize),
    /// Add a field the type does not know.
    Unknown(String, Value),
    /// Wrap the n-th field's value in an object or an array.
    Wrap(usize, bool),
    /// Replace the whole body.
    Root(Value),
}

fn apply(mut body: Value, edits: &[Edit]) -> Value {
    for edit in edits {
        let Value::Object(map) = &mut body else {
            break;
        };
        let nth = |map: &Map<String, Value>, n: usize| {
            (!map.is_empty())
                .then(|| map.keys().nth(n % map.len()).cloned())
                .flatten()
        };
        match edit.clone() {
            Edit::Set(n, v) => {
                if let Some(k) = nth(map, n) {
                    map.insert(k, v);
                }
            }
            Edit::Remove(n) => {
                if let Some(k) = nth(map, n) {
                    map.remove(&k);
                }
            }
            Edit::Unknown(k, v) => {
                map.insert(k, v);
            }
            Edit::Wrap(n, as_object) => {
                if let Some(k) = nth(map, n) {
                    let inner = map[&k].take();
                    map[&k] = if as_object {
                        json!({ "value": inner })
                    } else {
                        json!([inner])
                    };
                }
            }
            Edit::Root(v) => body = v,
        }
    }
    body
}

/// Strings at and around the model's limits, and hostile ones.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (
            prop::sample::select(vec![
                49usize, 50, 51, 99, 100, 101, 199, 200, 201, 500, 501, 2000, 2001
            ]),
            prop::sample::select(vec!["x", "é", "İ", "👍", " ", "\u{202e}"])
        )
            .prop_map(|(n, s)| s.repeat(n)),
        prop::sample::select(vec![
            "",
            " ",
            "\t",
            "a\nb",
            "\u{0}",
            "ADMIN@Example.COM",
            "a@b",
            "@b.c",
            "a@.c",
            "a@b.c.",
            "Europe/Madrid",
            "UTC",
            "Etc/GMT+12",
            "Pacific/Kiritimati",
            "Mars/Olympus",
            "../../etc/passwd",
            "2031-03-29",
            "2031-03-30",
            "2031-02-30",
            "0000-01-01",
            "+262142-12-31",
            "-262143-01-01",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:00:00-05:00",
            "+262142-12-31T23:59:59Z",
            "-262143-01-01T00:00:00Z",
            "2031-03-30T02:30:00+01:00",
            "1970-01-01T00:00:00Z",
            "2031-03-30T02:30:00",
            "00000000-0000-0000-0000-000000000000",
            "aa:bb:cc:dd:ee:ff",
            "AA-BB-CC-DD-EE-FF",
            "read_booking",
            "root",
            "online",
            "exploded",
            "pending",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Values for a field: hostile scalars, dates and nested shapes.
fn nasty_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        nasty_string().prop_map(Value::String),
        prop::sample::select(vec![
            0i64,
            -1,
            1,
            4,
            5,
            100,
            101,
            65_535,
            65_536,
            i64::MIN,
            i64::MAX
        ])
        .prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        prop::sample::select(vec![
            0.5f64,
            -0.0,
            1e308,
            -1e308,
            90.000_001,
            -180.5,
            f64::EPSILON
        ])
        .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(uuid::Uuid::new_v4())),
    ];
    scalar.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(nasty_string(), inner.clone(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            (nasty_string(), nasty_string())
                .prop_map(|(a, d)| json!({ "arrival": a, "departure": d })),
            (nasty_string(), nasty_string())
                .prop_map(|(i, o)| json!({ "check_in": i, "check_out": o })),
            (inner.clone(), inner).prop_map(|(lat, lon)| json!({ "lat": lat, "lon": lon })),
        ]
    })
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (any::<usize>(), nasty_value()).prop_map(|(n, v)| Edit::Set(n, v)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => (nasty_string(), nasty_value()).prop_map(|(k, v)| Edit::Unknown(k, v)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(n, o)| Edit::Wrap(n, o)),
        1 => nasty_value().prop_map(Edit::Root),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 0..4)
}

fn body_kind() -> impl Strategy<Value = Body> {
    prop::sample::select(BODIES.to_vec())
}

#[test]
fn every_example_body_is_valid_so_the_mutations_start_from_accepted_input() {
    for body in BODIES {
        let bytes = example(body, &Ids::random()).to_string();
        assert_eq!(judge(body, bytes.as_bytes()), Verdict::Valid, "{body:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_bodies_parse_and_validate_without_panicking(body in body_kind(), edits in edits()) {
        let value = apply(example(body, &Ids::random()), &edits);
        let _ = judge(body, value.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_and_json_are_refused_without_panicking(
        body in body_kind(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        value in nasty_value(),
    ) {
        let _ = judge(body, &bytes);
        let _ = judge(body, value.to_string().as_bytes());
    }
}

/// A tenant built by root, and the routes that take a body.
struct Target {
    app: App,
    root: String,
    routes: Vec<Route>,
}

/// A route with a JSON body, and the model type of that body if any.
struct Route {
    method: Method,
    path: String,
    kind: Option<Body>,
    example: Value,
    authenticated: bool,
}

fn uuid(text: &str) -> uuid::Uuid {
    text.parse().expect("a uuid")
}

impl Target {
    async fn new() -> Self {
        // The user quota answers 429 before a body is read; this test is
        // about bodies, so root gets room for every case.
        let quota = hse_auth::rate_limit::Quota::new(
            std::num::NonZeroU32::new(100_000).expect("non-zero"),
            std::time::Duration::from_millis(1),
        );
        let app = App::with_state(hse_server::backends::Backends::in_memory(), |s| {
            s.services_mut().user_quota = quota;
        })
        .await;
        let root = app.root_token().await;
        let company = id_of(
            &app.post("/v1/partner-companies", &root, json!({"name": "Adversary"}))
                .await,
        );
        let org = id_of(
            &app.post(
                "/v1/organizations",
                &root,
                json!({"partner_company_id": company, "name": "Adversary"}),
            )
            .await,
        );
        let est = id_of(
            &app.post(
                "/v1/establishments",
                &root,
                json!({"organization_id": org, "name": "Sol", "timezone": bodies::ZONE}),
            )
            .await,
        );
        let area = id_of(
            &app.post(
                "/v1/areas",
                &root,
                json!({"establishment_id": est, "name": "101", "type": "room"}),
            )
            .await,
        );
        let device = id_of(
            &app.post(
                "/v1/devices",
                &root,
                json!({"area_id": area, "device_type": "doorlock", "protocol": "hse-tcp"}),
            )
            .await,
        );
        let mut guests = Vec::new();
        for name in ["Ana", "Eva"] {
            guests.push(id_of(
                &app.post(
                    "/v1/guests",
                    &root,
                    json!({"organization_id": org, "first_name": name}),
                )
                .await,
            ));
        }
        let ids = Ids {
            partner_company: uuid(&company),
            organization: uuid(&org),
            establishment: uuid(&est),
            area: uuid(&area),
            role: SystemRole::User.id().as_uuid(),
            guest: uuid(&guests[0]),
        };
        let mut bookings = Vec::new();
        for day in [1, 10] {
            let stay = json!({"check_in": format!("2032-01-{day:02}T14:00:00Z"),
                "check_out": format!("2032-01-{:02}T10:00:00Z", day + 2)});
            bookings.push(id_of(
                &app.post(
                    "/v1/bookings",
                    &root,
                    json!({"area_id": area, "guest_id": guests[0], "stay": stay}),
                )
                .await,
            ));
        }
        let user = id_of(
            &app.post("/v1/users", &root, example(Body::NewUser, &ids))
                .await,
        );
        let invited = app
            .post("/v1/invitations", &root, example(Body::NewInvitation, &ids))
            .await;
        assert!(invited.status.is_success(), "{}", invited.body);
        let token = invited.body["token"].as_str().expect("token").to_owned();
        let model = |method: Method, path: String, kind: Body| Route {
            method,
            path,
            kind: Some(kind),
            example: example(kind, &ids),
            authenticated: kind != Body::Acceptance,
        };
        let server = |path: String, example: Value| Route {
            method: Method::POST,
            path,
            kind: None,
            example,
            authenticated: true,
        };
        let routes = vec![
            model(
                Method::POST,
                "/v1/partner-companies".into(),
                Body::NewPartnerCompany,
            ),
            model(
                Method::PATCH,
                format!("/v1/partner-companies/{company}"),
                Body::PartnerCompanyPatch,
            ),
            model(
                Method::POST,
                "/v1/organizations".into(),
                Body::NewOrganization,
            ),
            model(
                Method::PATCH,
                format!("/v1/organizations/{org}"),
                Body::OrganizationPatch,
            ),
            model(
                Method::POST,
                "/v1/establishments".into(),
                Body::NewEstablishment,
            ),
            model(
                Method::PATCH,
                format!("/v1/establishments/{est}"),
                Body::EstablishmentPatch,
            ),
            model(Method::POST, "/v1/areas".into(), Body::NewArea),
            model(Method::PATCH, format!("/v1/areas/{area}"), Body::AreaPatch),
            model(Method::POST, "/v1/devices".into(), Body::NewDevice),
            model(
                Method::PATCH,
                format!("/v1/devices/{device}"),
                Body::DevicePatch,
            ),
            model(Method::PATCH, format!("/v1/users/{user}"), Body::UserPatch),
            model(Method::POST, "/v1/roles".into(), Body::NewRole),
            model(Method::POST, "/v1/invitations".into(), Body::NewInvitation),
            model(
                Method::POST,
                format!("/v1/invitations/{token}/accept"),
                Body::Acceptance,
            ),
            model(Method::POST, "/v1/guests".into(), Body::NewGuest),
            model(
                Method::PATCH,
                format!("/v1/guests/{}", guests[0]),
                Body::GuestPatch,
            ),
            model(Method::POST, "/v1/bookings".into(), Body::NewBooking),
            model(
                Method::PATCH,
                format!("/v1/bookings/{}", bookings[0]),
                Body::BookingPatch,
            ),
            // `POST /v1/users` takes the user's fields flattened beside a password.
            server("/v1/users".into(), example(Body::NewUser, &ids)),
            server(
                "/v1/auth/login".into(),
                json!({"email": "nobody@hse.test", "password": "not the password"}),
            ),
            server(
                "/v1/auth/second-factor".into(),
                json!({"challenge": "x.y.z", "code": "123456"}),
            ),
            server(
                "/v1/auth/refresh".into(),
                json!({"refresh_token": "not-a-token"}),
            ),
            server(
                "/v1/auth/logout".into(),
                json!({"refresh_token": "not-a-token"}),
            ),
            server(
                "/v1/api-keys".into(),
                json!({"name": "k", "permissions": ["read_booking"]}),
            ),
            server(
                format!("/v1/establishments/{est}/users"),
                json!({"user_id": user}),
            ),
            server(
                format!("/v1/guests/{}/companions", guests[0]),
                json!({"companion_id": guests[1], "relationship": "friend"}),
            ),
            server(
                format!("/v1/bookings/{}/cancel", bookings[1]),
                json!({"reason": "plans changed"}),
            ),
            server(
                format!("/v1/devices/{device}/commands"),
                json!({"command_type": "unlock", "timeout_ms": 1}),
            ),
            server("/v1/dead-letters/replay".into(), json!({"ids": ["1-0"]})),
        ];
        Self { app, root, routes }
    }

    async fn send(&self, route: &Route, bytes: Vec<u8>) -> Answer {
        let mut request = Request::builder()
            .method(route.method.clone())
            .uri(&route.path)
            .header("content-type", "application/json");
        if route.authenticated {
            request = request.header("authorization", format!("Bearer {}", self.root));
        }
        self.app
            .raw(request.body(HttpBody::from(bytes)).expect("request builds"))
            .await
    }
}

/// What every answer to a body must be, and what it must be for what the
/// model made of the body.
fn check_answer(route: &Route, bytes: &[u8], answer: &Answer) {
    let status = answer.status;
    let shown = String::from_utf8_lossy(bytes);
    assert!(
        status.as_u16() < 500,
        "{} {}: {status} {} for {shown}",
        route.method,
        route.path,
        answer.body
    );
    if !status.is_success() {
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "{shown}"
        );
        assert!(answer.body["code"].is_string(), "{}", answer.body);
    }
    let Some(kind) = route.kind else { return };
    match judge(kind, bytes) {
        Verdict::Malformed => {
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{kind:?} {shown}: {}",
                answer.body
            );
            assert_eq!(answer.body["field"], "body", "{}", answer.body);
        }
        Verdict::Invalid(field) => assert!(
            status.is_client_error(),
            "{kind:?} refused on {field} by the model, answered {status} {} for {shown}",
            answer.body
        ),
        Verdict::Valid => {}
    }
}

#[test]
fn the_router_answers_every_mutated_body_with_a_typed_client_error_or_success() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = rt.block_on(Target::new());
    let mut runner = TestRunner::new(Config::with_cases(400));
    let strategy = (
        0..target.routes.len(),
        edits(),
        prop::collection::vec(any::<u8>(), 0..64),
        0..8u8,
    );
    runner
        .run(&strategy, |(n, edits, noise, how)| {
            let route = &target.routes[n];
            let bytes = match how {
                0 => noise,
                1 => route.example.to_string().into_bytes(),
                _ => apply(route.example.clone(), &edits)
                    .to_string()
                    .into_bytes(),
            };
            let answer = rt.block_on(target.send(route, bytes.clone()));
            check_answer(route, &bytes, &answer);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // The examples themselves reach the handlers: a typo in one would make
    // every mutation of it a parse error and the test toothless.
    for route in target.routes.iter().filter(|r| r.kind.is_some()) {
        let bytes = route.example.to_string().into_bytes();
        let answer = rt.block_on(target.send(route, bytes));
        assert_ne!(
            answer.body["field"], "body",
            "{} {}: {}",
            route.method, route.path, answer.body
        );
    }
}

#[test]
fn stays_at_the_ends_of_the_calendar_are_refused_not_panicked_on() {
    // A check-out in year 262142 overflowed the turnover gap: the handler
    // panicked and the connection dropped. Now it is a 400 naming the field.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = rt.block_on(Target::new());
    let route = target
        .routes
        .iter()
        .find(|r| r.kind == Some(Body::NewBooking))
        .expect("booking route");
    let stays = [
        json!({"check_in": "+262142-12-30T00:00:00Z", "check_out": "+262142-12-31T23:59:59Z"}),
        json!({"check_in": "9999-12-31T20:00:00-05:00", "check_out": "9999-12-31T23:00:00-05:00"}),
        json!({"check_in": "-262143-01-01T00:00:00Z", "check_out": "-262143-01-02T00:00:00Z"}),
        json!({"arrival": "+262142-12-29", "departure": "+262142-12-31"}),
        json!({"arrival": "-262143-01-01", "departure": "-262143-01-03"}),
    ];
    for stay in stays {
        let mut body = route.example.clone();
        body["stay"] = stay;
        let bytes = body.to_string().into_bytes();
        assert!(
            matches!(judge(Body::NewBooking, &bytes), Verdict::Invalid(_)),
            "{body}"
        );
        let answer = rt.block_on(target.send(route, bytes));
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert_eq!(answer.body["code"], "invalid_input");
    }
}
