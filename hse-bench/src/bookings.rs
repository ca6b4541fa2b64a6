//! Create-booking throughput and p99 with 64 clients: each on its own area
//! (no conflicts), then all on one area where every stay is asked for twice
//! (half the answers are 409 conflicts from the exclusion constraint).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::json;

use crate::api::{ApiServer, get, request};
use crate::env::Env;
use crate::http_load::{self, MakeRequest};
use crate::report::{Figure, Report};

const CLIENTS: usize = 64;

/// Runs the section.
pub(crate) async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let server = ApiServer::start(env, report).await?;
    let (org, est) = server.establishment().await?;
    let mut areas = Vec::new();
    let mut guests = Vec::new();
    for i in 0..=CLIENTS {
        areas.push(
            server
                .create(
                    "/v1/areas",
                    json!({"establishment_id": est, "name": format!("Room {i}"), "type": "room"}),
                )
                .await?,
        );
        guests.push(server.create("/v1/guests", json!({"organization_id": org, "first_name": format!("Guest{i}"), "email": format!("guest{i}@bench.example")})).await?);
    }
    let (areas, guests) = (Arc::new(areas), Arc::new(guests));
    let base = (Utc::now() + TimeDelta::days(30)).duration_trunc(TimeDelta::days(1))?;
    let duration = Duration::from_secs(if env.smoke { 1 } else { 10 });
    let live = http_load::run(
        server.addr,
        CLIENTS,
        duration,
        get("/health/liveness".into(), String::new()),
    )
    .await?;
    let token = server.token.clone();
    let distinct: MakeRequest = {
        let (areas, guests, token) = (areas.clone(), guests.clone(), token.clone());
        Arc::new(move |c, i| booking(&token, &areas[c], &guests[c], base, i))
    };
    let spread = http_load::run(server.addr, CLIENTS, duration, distinct).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let one: MakeRequest = Arc::new(move |c, _| {
        let window = counter.fetch_add(1, Ordering::Relaxed) / 2;
        booking(&token, &areas[CLIENTS], &guests[c], base, window)
    });
    let shared = http_load::run(server.addr, CLIENTS, duration, one).await?;
    report.note(format!(
        "bookings: distinct areas answered {:?}; one area answered {:?}",
        spread.by_status, shared.by_status
    ));
    report.add(Figure::new(
        "bookings",
        "create, 64 clients, distinct areas",
        spread.rps(&[201]),
        "req/s",
        "GET /health/liveness",
        live.rps(&[200]),
    ));
    report.add(Figure::new(
        "bookings",
        "create p99, distinct areas",
        spread.ms(0.99),
        "ms",
        "liveness p99",
        live.ms(0.99),
    ));
    report.add(Figure::new(
        "bookings",
        "create, 64 clients, one area (201 + 409)",
        shared.total_rps(),
        "req/s",
        "distinct areas",
        spread.total_rps(),
    ));
    report.add(Figure::new(
        "bookings",
        "create p99, one area",
        shared.ms(0.99),
        "ms",
        "distinct areas p99",
        spread.ms(0.99),
    ));
    server.stop().await
}

/// A one-night stay starting `2 × window` days after `base`.
fn booking(
    token: &str,
    area: &str,
    guest: &str,
    base: DateTime<Utc>,
    window: u64,
) -> hyper::Request<http_body_util::Full<hyper::body::Bytes>> {
    let check_in = base + TimeDelta::days(2 * i64::try_from(window).unwrap_or(0));
    let check_out = check_in + TimeDelta::days(1);
    let body = json!({"area_id": area, "guest_id": guest, "stay": {"check_in": check_in.to_rfc3339(), "check_out": check_out.to_rfc3339()}});
    request("POST", "/v1/bookings", token, Some(body.to_string()))
}
