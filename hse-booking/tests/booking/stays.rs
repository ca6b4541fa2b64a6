//! The check-in/check-out worker under a controlled clock, with several
//! workers racing.

use std::sync::Arc;

use chrono::{Duration, Utc};
use hse_booking::clock::ManualClock;
use hse_booking::codes::CodeState;
use hse_booking::model::BookingPatch;
use hse_booking::stays::StayWorker;
use hse_booking::store::StayMoves;
use hse_booking::{BookingError, BookingStatus};

use crate::support::{World, at, both};

both!(stays_start_and_end_once_however_many_workers_run);
async fn stays_start_and_end_once_however_many_workers_run(w: World) {
    let now = Utc::now();
    let b = w.book(w.rooms[0], 1, 5).await;
    let pending = w.book(w.rooms[1], 1, 5).await;
    w.service.confirm(&w.admin, b.id, now).await.unwrap();
    let clock = Arc::new(ManualClock::new(at(0)));
    let workers: Vec<_> = (0..4)
        .map(|_| StayWorker::new(w.store.clone(), clock.clone()))
        .collect();
    assert_eq!(workers[0].run_once().await.unwrap().checked_in.len(), 0);

    clock.set(at(1));
    let mut checked_in = 0;
    for moves in race(&workers).await {
        checked_in += moves.checked_in.len();
    }
    assert_eq!(checked_in, 1);
    assert_eq!(
        w.service.booking(&w.admin, b.id).await.unwrap().status,
        BookingStatus::InProgress
    );
    // In progress: no cancel, modify or delete.
    let err = w.service.cancel(&w.admin, b.id, "", now).await.unwrap_err();
    assert!(
        matches!(err, BookingError::IllegalTransition(t) if t.from == BookingStatus::InProgress)
    );
    let err = w
        .service
        .modify(&w.admin, b.id, BookingPatch::default(), now)
        .await
        .unwrap_err();
    assert!(matches!(err, BookingError::IllegalTransition(_)));

    clock.set(at(5) + Duration::seconds(1));
    let mut checked_out = 0;
    for moves in race(&workers).await {
        checked_out += moves.checked_out.len();
    }
    assert_eq!(checked_out, 1);
    assert_eq!(
        w.service.booking(&w.admin, b.id).await.unwrap().status,
        BookingStatus::Completed
    );
    // The pending booking never started; the completed one's code is on its way out.
    assert_eq!(
        w.service
            .booking(&w.admin, pending.id)
            .await
            .unwrap()
            .status,
        BookingStatus::Pending
    );
    let codes = w.service.codes(&w.admin, b.id).await.unwrap();
    assert!(
        codes.iter().all(|c| c.state == CodeState::Removing),
        "{codes:?}"
    );
    assert_eq!(workers[1].run_once().await.unwrap(), Default::default());
}

/// Runs every worker once, concurrently.
async fn race(workers: &[StayWorker]) -> Vec<StayMoves> {
    let tasks: Vec<_> = workers
        .iter()
        .cloned()
        .map(|wk| tokio::spawn(async move { wk.run_once().await.unwrap() }))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
