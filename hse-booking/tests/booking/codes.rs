//! Door codes: forced collisions end distinct, the cap holds, and a lock
//! that was offline converges on exactly the intended codes.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_booking::clock::ManualClock;
use hse_booking::codes::{Attempt, CodeState};
use hse_booking::door_code::{CodeLength, CodeSource, DoorCode, OsCodes};
use hse_booking::lock::{LockProgrammer, ProgramCode};
use hse_booking::model::{BookingPatch, Stay};
use hse_booking::{BookingError, CodeProgrammer, DoorCodeId};
use hse_core::DeviceId;

use crate::support::{World, at, both};

tokio::task_local! {
    /// Set in each issuing task: its first draw is forced.
    static FIRST_DRAW: Cell<bool>;
}

/// Forces the first draw of every issuing task to the same code; later
/// draws (after a collision) are OS-random.
#[derive(Debug)]
struct Forced;

impl CodeSource for Forced {
    fn next_code(&self, len: CodeLength) -> Result<DoorCode, BookingError> {
        if FIRST_DRAW
            .try_with(|first| first.replace(false))
            .unwrap_or(false)
        {
            DoorCode::parse("482915")
        } else {
            OsCodes.next_code(len)
        }
    }
}

both!(fifty_concurrent_issuances_forced_to_one_code_end_distinct);
async fn fifty_concurrent_issuances_forced_to_one_code_end_distinct(w: World) {
    let w = World::with_rooms(w.pool.clone(), 50, false).await;
    let entrance = w
        .add_lock(w.building, serde_json::json!({"max_active_codes": 100}))
        .await;
    let service = w.service.clone().with_code_source(Arc::new(Forced));
    let now = Utc::now();
    let mut ids = Vec::new();
    for room in &w.rooms {
        ids.push(
            service
                .create_booking(&w.admin, w.request(*room, 0, 24), now)
                .await
                .unwrap()
                .id,
        );
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (service, admin, id) = (service.clone(), w.admin.clone(), *id);
            tokio::spawn(FIRST_DRAW.scope(Cell::new(true), async move {
                service.confirm(&admin, id, now).await
            }))
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut on_entrance = BTreeSet::new();
    for id in &ids {
        for c in service.codes(&w.admin, *id).await.unwrap() {
            if c.device_id == entrance {
                assert!(
                    on_entrance.insert(c.code.expose().to_owned()),
                    "duplicate code on the entrance lock"
                );
            }
        }
    }
    assert_eq!(on_entrance.len(), 50);
    assert!(on_entrance.contains("482915"));
}

both!(a_lock_never_holds_more_than_its_cap_of_overlapping_codes);
async fn a_lock_never_holds_more_than_its_cap_of_overlapping_codes(w: World) {
    let w = World::with_rooms(w.pool.clone(), 8, true).await;
    let entrance = w
        .add_lock(w.building, serde_json::json!({"max_active_codes": 5}))
        .await;
    let now = Utc::now();
    let mut ids = Vec::new();
    for room in &w.rooms {
        ids.push(w.book(*room, 0, 24).await.id);
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (service, admin, id) = (w.service.clone(), w.admin.clone(), *id);
            tokio::spawn(async move { service.confirm(&admin, id, now).await })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(BookingError::CodeCapReached { device, max: 5 }) if device == entrance => {
                refused += 1
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let mut live = 0;
    for id in &ids {
        live += w
            .service
            .codes(&w.admin, *id)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.device_id == entrance)
            .count();
    }
    assert_eq!((live, refused), (5, 3));
    // A later, non-overlapping stay still gets a code.
    let later = w.book(w.rooms[0], 100, 120).await;
    w.service.confirm(&w.admin, later.id, now).await.unwrap();
}

/// What a lock slot holds: the PIN and its window.
type Slot = (String, DateTime<Utc>, DateTime<Utc>);

/// A lock that can be switched off; it holds slot → (code, window).
#[derive(Debug, Default)]
struct FakeLock {
    online: AtomicBool,
    slots: Mutex<BTreeMap<(DeviceId, DoorCodeId), Slot>>,
}

#[async_trait]
impl LockProgrammer for FakeLock {
    async fn program(&self, r: &ProgramCode<'_>) -> Attempt {
        if !self.online.load(Ordering::SeqCst) {
            return Attempt::Unreachable;
        }
        let value = (r.code.expose().to_owned(), r.valid_from, r.valid_until);
        self.slots.lock().unwrap().insert((r.device, r.slot), value);
        Attempt::Acknowledged
    }

    async fn remove(&self, device: DeviceId, slot: DoorCodeId) -> Attempt {
        if !self.online.load(Ordering::SeqCst) {
            return Attempt::Unreachable;
        }
        self.slots.lock().unwrap().remove(&(device, slot));
        Attempt::Acknowledged
    }
}

both!(a_lock_offline_then_back_ends_with_exactly_the_intended_codes);
async fn a_lock_offline_then_back_ends_with_exactly_the_intended_codes(w: World) {
    let start = Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let lock = Arc::new(FakeLock::default());
    let programmer = CodeProgrammer::new(w.store.clone(), lock.clone(), clock.clone());
    let room = w.rooms[0];
    let a = w
        .service
        .create_booking(&w.admin, w.request(room, 0, 24), start)
        .await
        .unwrap();
    let b = w
        .service
        .create_booking(&w.admin, w.request(room, 48, 72), start)
        .await
        .unwrap();
    w.service.confirm(&w.admin, a.id, start).await.unwrap();
    w.service.confirm(&w.admin, b.id, start).await.unwrap();
    // Online: both codes land.
    lock.online.store(true, Ordering::SeqCst);
    assert_eq!(programmer.run_once().await.unwrap(), 2);
    assert_eq!(lock.slots.lock().unwrap().len(), 2);
    // Offline: A moves, B is cancelled, C is confirmed. Nothing lands.
    lock.online.store(false, Ordering::SeqCst);
    let moved = BookingPatch {
        stay: Some(Stay::Instants {
            check_in: at(2),
            check_out: at(26),
        }),
        ..Default::default()
    };
    let now = clock.now_plus(Duration::seconds(1));
    w.service.modify(&w.admin, a.id, moved, now).await.unwrap();
    w.service.cancel(&w.admin, b.id, "", now).await.unwrap();
    let c = w.book(room, 100, 120).await;
    w.service.confirm(&w.admin, c.id, now).await.unwrap();
    for _ in 0..5 {
        clock.advance(Duration::minutes(11));
        programmer.run_once().await.unwrap();
    }
    let attempts: Vec<u32> = w
        .service
        .codes(&w.admin, a.id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.attempts)
        .collect();
    assert!(
        attempts.iter().all(|n| *n >= 3),
        "retried while offline: {attempts:?}"
    );
    // Back online: after the backoff everything converges.
    lock.online.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        clock.advance(Duration::minutes(11));
        programmer.run_once().await.unwrap();
    }
    let code_of =
        |codes: Vec<hse_booking::codes::DoorCodeRecord>| codes.into_iter().next().unwrap();
    let (ca, cb, cc) = (
        code_of(w.service.codes(&w.admin, a.id).await.unwrap()),
        code_of(w.service.codes(&w.admin, b.id).await.unwrap()),
        code_of(w.service.codes(&w.admin, c.id).await.unwrap()),
    );
    assert_eq!(
        (ca.state, cb.state, cc.state),
        (CodeState::Active, CodeState::Removed, CodeState::Active)
    );
    let expected = BTreeMap::from([
        (
            (ca.device_id, ca.id),
            (ca.code.expose().to_owned(), ca.valid_from, ca.valid_until),
        ),
        (
            (cc.device_id, cc.id),
            (cc.code.expose().to_owned(), cc.valid_from, cc.valid_until),
        ),
    ]);
    assert_eq!(*lock.slots.lock().unwrap(), expected);
    assert_eq!(ca.valid_from, at(2) - Duration::minutes(30));
}

trait NowPlus {
    fn now_plus(&self, by: Duration) -> DateTime<Utc>;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, by: Duration) -> DateTime<Utc> {
        self.advance(by);
        hse_booking::clock::Clock::now(self)
    }
}

both!(a_code_reaching_max_usages_is_removed);
async fn a_code_reaching_max_usages_is_removed(w: World) {
    let now = Utc::now();
    let service = w.service_with(hse_booking::BookingsConfig {
        code_max_usages: Some(2),
        ..Default::default()
    });
    let b = service
        .create_booking(&w.admin, w.request(w.rooms[0], 0, 24), now)
        .await
        .unwrap();
    service.confirm(&w.admin, b.id, now).await.unwrap();
    let code = service.codes(&w.admin, b.id).await.unwrap().remove(0);
    let used = service
        .record_code_use(code.device_id, code.id, now)
        .await
        .unwrap();
    assert_eq!((used.usage_count, used.state), (1, CodeState::Pending));
    let used = service
        .record_code_use(code.device_id, code.id, now)
        .await
        .unwrap();
    assert_eq!((used.usage_count, used.state), (2, CodeState::Removing));
    let wrong_lock = service.record_code_use(DeviceId::new(), code.id, now).await;
    assert!(matches!(wrong_lock, Err(BookingError::NotFound { .. })));
}

both!(cancel_delete_move_and_check_out_take_codes_off_the_lock);
async fn cancel_delete_move_and_check_out_take_codes_off_the_lock(w: World) {
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let lock = Arc::new(FakeLock::default());
    lock.online.store(true, Ordering::SeqCst);
    let programmer = CodeProgrammer::new(w.store.clone(), lock.clone(), clock.clone());
    let stays = hse_booking::stays::StayWorker::new(w.store.clone(), clock.clone());
    let (r0, r1, r2) = (w.rooms[0], w.rooms[1], w.rooms[2]);
    let cancelled = w.book(r0, 0, 24).await;
    let deleted = w.book(r1, 0, 24).await;
    let moved = w.book(r2, 200, 224).await;
    let finished = w.book(r0, 100, 124).await;
    for b in [&cancelled, &deleted, &moved, &finished] {
        w.service.confirm(&w.admin, b.id, now).await.unwrap();
    }
    programmer.run_once().await.unwrap();
    assert_eq!(lock.slots.lock().unwrap().len(), 4);

    w.service
        .cancel(&w.admin, cancelled.id, "", now)
        .await
        .unwrap();
    w.service.delete(&w.admin, deleted.id, now).await.unwrap();
    // The move takes room 0's lock instead of room 2's.
    let patch = BookingPatch {
        area_id: Some(r0),
        ..Default::default()
    };
    w.service
        .modify(&w.admin, moved.id, patch, now)
        .await
        .unwrap();
    clock.set(at(124));
    stays.run_once().await.unwrap();
    stays.run_once().await.unwrap();
    clock.advance(Duration::minutes(1));
    programmer.run_once().await.unwrap();

    let slots = lock.slots.lock().unwrap().clone();
    let moved_codes = w.service.codes(&w.admin, moved.id).await.unwrap();
    let live: Vec<_> = moved_codes
        .iter()
        .filter(|c| c.state == CodeState::Active)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].device_id, w.room_locks[0]);
    assert_eq!(
        slots.keys().copied().collect::<Vec<_>>(),
        [(live[0].device_id, live[0].id)]
    );
    for b in [&cancelled, &finished] {
        let codes = w.service.codes(&w.admin, b.id).await.unwrap();
        assert!(
            codes.iter().all(|c| c.state == CodeState::Removed),
            "{codes:?}"
        );
    }
}

both!(a_reprogram_that_would_duplicate_a_code_issues_a_fresh_one);
async fn a_reprogram_that_would_duplicate_a_code_issues_a_fresh_one(w: World) {
    let w = World::with_rooms(w.pool.clone(), 2, false).await;
    let entrance = w.add_lock(w.building, serde_json::json!({})).await;
    let service = w.service.clone().with_code_source(Arc::new(Forced));
    let now = Utc::now();
    let (r0, r1) = (w.rooms[0], w.rooms[1]);
    let a = service
        .create_booking(&w.admin, w.request(r0, 0, 24), now)
        .await
        .unwrap();
    let b = service
        .create_booking(&w.admin, w.request(r1, 100, 124), now)
        .await
        .unwrap();
    for id in [a.id, b.id] {
        let confirm = service.confirm(&w.admin, id, now);
        FIRST_DRAW.scope(Cell::new(true), confirm).await.unwrap();
    }
    // Both hold 482915 on the entrance: fine while their windows are apart.
    for id in [a.id, b.id] {
        let code = &service.codes(&w.admin, id).await.unwrap()[0];
        assert_eq!(code.code.expose(), "482915");
    }
    // Moving B next to A would put two equal codes on the entrance at once.
    let patch = BookingPatch {
        stay: Some(Stay::Instants {
            check_in: at(10),
            check_out: at(30),
        }),
        ..Default::default()
    };
    service.modify(&w.admin, b.id, patch, now).await.unwrap();
    let codes = service.codes(&w.admin, b.id).await.unwrap();
    let retired: Vec<_> = codes
        .iter()
        .filter(|c| c.state == CodeState::Removing)
        .collect();
    let fresh: Vec<_> = codes
        .iter()
        .filter(|c| c.state == CodeState::Pending)
        .collect();
    assert_eq!((retired.len(), fresh.len()), (1, 1), "{codes:?}");
    assert_eq!(retired[0].code.expose(), "482915");
    assert_ne!(fresh[0].code.expose(), "482915");
    assert_eq!(
        (fresh[0].device_id, fresh[0].valid_from),
        (entrance, at(10) - Duration::minutes(30))
    );
}

both!(a_longer_stay_that_would_overfill_a_lock_is_refused_whole);
async fn a_longer_stay_that_would_overfill_a_lock_is_refused_whole(w: World) {
    let w = World::with_rooms(w.pool.clone(), 2, false).await;
    let entrance = w
        .add_lock(w.building, serde_json::json!({"max_active_codes": 1}))
        .await;
    let now = Utc::now();
    let a = w.book(w.rooms[0], 0, 24).await;
    let b = w.book(w.rooms[1], 100, 124).await;
    w.service.confirm(&w.admin, a.id, now).await.unwrap();
    w.service.confirm(&w.admin, b.id, now).await.unwrap();
    let patch = BookingPatch {
        stay: Some(Stay::Instants {
            check_in: at(10),
            check_out: at(124),
        }),
        ..Default::default()
    };
    let err = w
        .service
        .modify(&w.admin, b.id, patch, now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BookingError::CodeCapReached { device, max: 1 } if device == entrance),
        "{err:?}"
    );
    let unchanged = w.service.booking(&w.admin, b.id).await.unwrap();
    assert_eq!(unchanged.window.check_in(), at(100));
    let code = &w.service.codes(&w.admin, b.id).await.unwrap()[0];
    assert_eq!(code.valid_from, at(100) - Duration::minutes(30));
}

/// A lock that never answers.
#[derive(Debug)]
struct Hanging;

#[async_trait]
impl LockProgrammer for Hanging {
    async fn program(&self, _: &ProgramCode<'_>) -> Attempt {
        std::future::pending().await
    }

    async fn remove(&self, _: DeviceId, _: DoorCodeId) -> Attempt {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_lock_that_never_answers_counts_as_unreachable_and_is_retried() {
    let w = World::memory().await;
    let now = Utc::now();
    let b = w.book(w.rooms[0], 0, 24).await;
    w.service.confirm(&w.admin, b.id, now).await.unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let mut programmer = CodeProgrammer::new(w.store.clone(), Arc::new(Hanging), clock);
    programmer.attempt_timeout = std::time::Duration::from_millis(50);
    assert_eq!(programmer.run_once().await.unwrap(), 1);
    let code = w.service.codes(&w.admin, b.id).await.unwrap().remove(0);
    assert_eq!((code.state, code.attempts), (CodeState::Programming, 1));
    assert_eq!(code.next_attempt_at, Some(now + Duration::seconds(5)));
}
