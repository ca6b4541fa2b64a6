//! What reaches the logs at which level: a client's mistake (an overlap,
//! an illegal transition, a missing booking, invalid input) is DEBUG on
//! the call's span, never ERROR; genuine failures are logged at ERROR by
//! the caller that handles them (hse-server's 503).

use chrono::Utc;
use hse_booking::model::NewGuest;
use hse_booking::{BookingError, BookingId};

use crate::support::{Captured, World};

#[tokio::test]
async fn client_mistakes_are_logged_at_debug_never_at_error() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let w = World::memory().await;
    let now = Utc::now();
    let b = w.book(w.rooms[0], 0, 24).await;
    let overlap = w.request(w.rooms[0], 12, 36);
    let refusals = [
        w.service.create_booking(&w.admin, overlap, now).await.err(),
        w.service.cancel(&w.admin, b.id, "", now).await.err(),
        w.service.confirm(&w.admin, b.id, now).await.err(),
        w.service
            .delete(&w.admin, BookingId::new(), now)
            .await
            .err(),
        w.service
            .create_guest(&w.admin, NewGuest::default(), now)
            .await
            .err(),
    ];
    assert!(matches!(
        refusals,
        [
            Some(BookingError::Overlap { .. }),
            None,
            Some(BookingError::IllegalTransition(_)),
            Some(BookingError::NotFound { .. }),
            Some(BookingError::Invalid { .. }),
        ]
    ));

    let log = captured.text();
    assert!(
        !log.contains("ERROR"),
        "a client mistake logged at ERROR: {log}"
    );
    let refused = log.lines().filter(|l| l.contains("DEBUG")).count();
    assert!(refused >= 4, "each refusal is logged at DEBUG: {log}");
}
