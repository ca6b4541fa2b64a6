//! Door codes never reach logs or traces: a full flow (confirm, a lock that
//! refuses, a channel that fails, a cancellation) runs under a subscriber
//! that records every event and span at TRACE level.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use hse_booking::clock::ManualClock;
use hse_booking::codes::Attempt;
use hse_booking::lock::{LockProgrammer, ProgramCode};
use hse_booking::notification::{ChannelKind, Notification};
use hse_booking::{CodeProgrammer, Dispatcher, DoorCodeId, NotificationChannel};
use hse_core::DeviceId;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::support::{Captured, World};

#[derive(Debug)]
struct Refusing;

#[async_trait]
impl LockProgrammer for Refusing {
    async fn program(&self, _: &ProgramCode<'_>) -> Attempt {
        Attempt::Refused("slot table full".into())
    }

    async fn remove(&self, _: DeviceId, _: DoorCodeId) -> Attempt {
        Attempt::Unreachable
    }
}

#[derive(Debug)]
struct Failing;

#[async_trait]
impl NotificationChannel for Failing {
    async fn send(&self, _: &Notification) -> Result<(), String> {
        Err("mailbox unavailable".into())
    }
}

#[tokio::test]
async fn door_codes_never_appear_in_logs_or_traces() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let w = World::memory().await;
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let b = w.book(w.rooms[0], 0, 24).await;
    w.service.confirm(&w.admin, b.id, now).await.unwrap();
    let code = w.service.codes(&w.admin, b.id).await.unwrap().remove(0);
    CodeProgrammer::new(w.store.clone(), Arc::new(Refusing), clock.clone())
        .run_once()
        .await
        .unwrap();
    let dispatcher =
        Dispatcher::new(w.store.clone(), clock).with_channel(ChannelKind::Email, Arc::new(Failing));
    dispatcher.run_once().await.unwrap();
    w.service.cancel(&w.admin, b.id, "", now).await.unwrap();
    let again = w.service.confirm(&w.admin, b.id, now).await;
    assert!(again.is_err());

    let log = captured.text();
    assert!(
        log.contains("lock refused a door code"),
        "the flow logged: {log}"
    );
    assert!(log.contains("notification not delivered"));
    assert!(
        !log.contains(code.code.expose()),
        "a door code leaked into the log"
    );
}
