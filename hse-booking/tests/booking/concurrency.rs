//! 64 concurrent requests for overlapping ranges of one area, 200 rounds,
//! on PostgreSQL with one connection each (and on the in-memory adapter
//! with worker threads): every round exactly one wins and the rest get the
//! conflict naming the winner.

use std::sync::Arc;

use chrono::{Duration, Utc};
use hse_booking::model::Stay;
use hse_booking::{BookingError, Bookings, BookingsConfig};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::Barrier;

use crate::support::{World, at};

const CLIENTS: usize = 64;
const ROUNDS: i64 = 200;

#[sqlx::test(migrations = false)]
async fn exactly_one_of_64_concurrent_overlapping_requests_wins_every_round(pool: sqlx::PgPool) {
    let w = World::postgres(pool.clone()).await;
    let wide = PgPoolOptions::new()
        .max_connections(CLIENTS as u32)
        .min_connections(CLIENTS as u32)
        .connect_with(
            (*pool.connect_options())
                .clone()
                .username(hse_core::postgres::APP_LOGIN_ROLE),
        )
        .await
        .unwrap();
    let store = Arc::new(hse_booking::postgres::PgBookingStore::new(wide.clone()));
    let service = Arc::new(Bookings::new(
        store,
        w.tenancy.clone(),
        BookingsConfig::default(),
    ));
    rounds(&w, &service).await;
    let pairs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings a JOIN bookings b
           ON a.area_id = b.area_id AND a.id < b.id
          AND a.status <> 'cancelled' AND b.status <> 'cancelled'
          AND tstzrange(a.check_in, a.blocked_until) && tstzrange(b.check_in, b.blocked_until)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(pairs, 0);
    // Counted as the owner: the application role outside a scoped
    // transaction sees no booking at all.
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, ROUNDS);
    wide.close().await;
    // Overlapping inserts that ran side by side would each wait on the
    // other's uncommitted entry of the exclusion constraint: a deadlock
    // PostgreSQL breaks after `deadlock_timeout` (1 s) by aborting one, a
    // stall the store's retry would hide. Queueing on the area's lock first
    // means none happens. (Statistics are flushed as the backends exit.)
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(deadlocks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_adapter_gives_the_same_guarantee_under_threads() {
    let w = World::memory().await;
    let service = Arc::new(w.service.clone());
    rounds(&w, &service).await;
    let all = w
        .store
        .list_bookings(
            &hse_core::Scope::Platform,
            Default::default(),
            hse_core::Page::first_max(),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), ROUNDS as usize);
}

/// Runs the rounds: `CLIENTS` simultaneous requests, all containing one
/// instant, per round.
async fn rounds(w: &World, service: &Arc<Bookings>) {
    let room = w.rooms[0];
    for round in 0..ROUNDS {
        let base = round * 100;
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let mut tasks = Vec::with_capacity(CLIENTS);
        for client in 0..CLIENTS as i64 {
            let (service, barrier, admin) = (service.clone(), barrier.clone(), w.admin.clone());
            let mut req = w.request(room, 0, 0);
            // Different ranges, all containing hour base + 40.
            req.stay = Stay::Instants {
                check_in: at(base + 40) - Duration::minutes(client * 7 + 1),
                check_out: at(base + 40) + Duration::minutes(client * 5 + 1),
            };
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                service.create_booking(&admin, req, Utc::now()).await
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(b) => winners.push(b.id),
                Err(BookingError::Overlap { with }) => losers.push(with),
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(losers.len(), CLIENTS - 1, "round {round}");
        assert!(losers.iter().all(|w| *w == winners[0]), "round {round}");
    }
}
