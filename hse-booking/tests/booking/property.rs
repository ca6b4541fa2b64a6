//! Random create/confirm/cancel/modify/delete sequences agree with a
//! simple sequential model, on both adapters.

use chrono::Utc;
use hse_booking::model::{BookingPatch, Stay};
use hse_booking::{BookingError, BookingId, BookingStatus};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::support::{World, at, both};

#[derive(Clone, Debug)]
enum Op {
    Create {
        room: usize,
        start: i64,
        len: i64,
    },
    Confirm(usize),
    Cancel(usize),
    Modify {
        which: usize,
        room: Option<usize>,
        start: i64,
        len: i64,
    },
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..60i64, 1..20i64).prop_map(|(room, start, len)| Op::Create { room, start, len }),
        1 => any::<usize>().prop_map(Op::Confirm),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => (any::<usize>(), proptest::option::of(0..2usize), 0..60i64, 1..20i64)
            .prop_map(|(which, room, start, len)| Op::Modify { which, room, start, len }),
        1 => any::<usize>().prop_map(Op::Delete),
    ]
}

/// What the model knows of a booking.
#[derive(Clone, Debug)]
struct Entry {
    id: BookingId,
    room: usize,
    start: i64,
    end: i64,
    status: BookingStatus,
    deleted: bool,
}

/// The model's outcome of an operation.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Overlap(Vec<BookingId>),
    Illegal(BookingStatus),
}

/// Hours; the default gap is one hour.
fn conflicts(
    model: &[Entry],
    skip: Option<BookingId>,
    room: usize,
    start: i64,
    end: i64,
) -> Vec<BookingId> {
    model
        .iter()
        .filter(|e| {
            !e.deleted
                && e.status != BookingStatus::Cancelled
                && Some(e.id) != skip
                && e.room == room
        })
        .filter(|e| start < e.end + 1 && e.start < end + 1)
        .map(|e| e.id)
        .collect()
}

fn check(expected: &Outcome, got: &Result<(), BookingError>, op: &Op) {
    match (expected, got) {
        (Outcome::Ok, Ok(())) => {}
        (Outcome::Overlap(ids), Err(BookingError::Overlap { with })) => {
            assert!(ids.contains(with), "{op:?}")
        }
        (Outcome::Illegal(from), Err(BookingError::IllegalTransition(t))) => {
            assert_eq!(t.from, *from, "{op:?}")
        }
        _ => panic!("{op:?}: model says {expected:?}, store says {got:?}"),
    }
}

async fn apply(w: &World, model: &mut Vec<Entry>, op: &Op) {
    let now = Utc::now();
    let live: Vec<usize> = (0..model.len()).filter(|i| !model[*i].deleted).collect();
    let pick = |n: usize| (!live.is_empty()).then(|| live[n % live.len()]);
    match *op {
        Op::Create { room, start, len } => {
            let found = conflicts(model, None, room, start, start + len);
            let got = w
                .service
                .create_booking(&w.admin, w.request(w.rooms[room], start, start + len), now)
                .await;
            let expected = if found.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Overlap(found)
            };
            check(&expected, &got.as_ref().map(|_| ()).map_err(clone_err), op);
            if let Ok(b) = got {
                model.push(Entry {
                    id: b.id,
                    room,
                    start,
                    end: start + len,
                    status: BookingStatus::Pending,
                    deleted: false,
                });
            }
        }
        Op::Confirm(n) | Op::Cancel(n) | Op::Delete(n) => {
            let Some(i) = pick(n) else { return };
            let e = model[i].clone();
            let allowed = match op {
                Op::Confirm(_) => e.status == BookingStatus::Pending,
                _ => matches!(e.status, BookingStatus::Pending | BookingStatus::Confirmed),
            };
            let got = match op {
                Op::Confirm(_) => w.service.confirm(&w.admin, e.id, now).await.map(|_| ()),
                Op::Cancel(_) => w.service.cancel(&w.admin, e.id, "", now).await.map(|_| ()),
                _ => w.service.delete(&w.admin, e.id, now).await,
            };
            let expected = if allowed {
                Outcome::Ok
            } else {
                Outcome::Illegal(e.status)
            };
            check(&expected, &got, op);
            if allowed {
                match op {
                    Op::Confirm(_) => model[i].status = BookingStatus::Confirmed,
                    Op::Cancel(_) => model[i].status = BookingStatus::Cancelled,
                    _ => model[i].deleted = true,
                }
            }
        }
        Op::Modify {
            which,
            room,
            start,
            len,
        } => {
            let Some(i) = pick(which) else { return };
            let e = model[i].clone();
            let room = room.unwrap_or(e.room);
            let patch = BookingPatch {
                stay: Some(Stay::Instants {
                    check_in: at(start),
                    check_out: at(start + len),
                }),
                area_id: Some(w.rooms[room]),
                ..Default::default()
            };
            let got = w
                .service
                .modify(&w.admin, e.id, patch, now)
                .await
                .map(|_| ());
            let expected = if !matches!(e.status, BookingStatus::Pending | BookingStatus::Confirmed)
            {
                Outcome::Illegal(e.status)
            } else {
                let found = conflicts(model, Some(e.id), room, start, start + len);
                if found.is_empty() {
                    Outcome::Ok
                } else {
                    Outcome::Overlap(found)
                }
            };
            check(&expected, &got, op);
            if expected == Outcome::Ok {
                model[i].room = room;
                model[i].start = start;
                model[i].end = start + len;
            }
        }
    }
}

fn clone_err(e: &BookingError) -> BookingError {
    match e {
        BookingError::Overlap { with } => BookingError::Overlap { with: *with },
        BookingError::IllegalTransition(t) => BookingError::IllegalTransition(*t),
        other => BookingError::Storage(other.to_string()),
    }
}

async fn agrees(w: &World, ops: &[Op]) {
    let mut model = Vec::new();
    for op in ops {
        apply(w, &mut model, op).await;
    }
    for e in &model {
        let got = w.service.booking(&w.admin, e.id).await;
        if e.deleted {
            assert!(matches!(got, Err(BookingError::NotFound { .. })));
            continue;
        }
        let b = got.unwrap();
        assert_eq!(
            (b.status, b.window.check_in(), b.window.check_out()),
            (e.status, at(e.start), at(e.end))
        );
        assert_eq!(b.area_id, w.rooms[e.room]);
        // Codes follow: a confirmed booking wants exactly one code, on its
        // room's lock; any other booking wants none.
        let codes = w.service.codes(&w.admin, e.id).await.unwrap();
        let wanted: Vec<_> = codes
            .iter()
            .filter(|c| c.state.is_wanted())
            .map(|c| c.device_id)
            .collect();
        let expected = if e.status == BookingStatus::Confirmed {
            vec![w.room_locks[e.room]]
        } else {
            vec![]
        };
        assert_eq!(wanted, expected, "{e:?}");
    }
}

both!(random_operation_sequences_agree_with_the_sequential_model);
async fn random_operation_sequences_agree_with_the_sequential_model(w: World) {
    let mut runner = TestRunner::deterministic();
    let cases = if w.pool.is_some() { 64 } else { 256 };
    for _ in 0..cases {
        // A fresh world per case keeps cases independent.
        let w = World::with_rooms(w.pool.clone(), 2, true).await;
        let ops = proptest::collection::vec(op(), 1..40)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        agrees(&w, &ops).await;
    }
}
