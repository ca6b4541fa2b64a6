//! Isolation-tester style tests (after PostgreSQL's `isolationtester`):
//! two real connections step through every interleaving of their
//! statements for booking creation and for door-code issuance, and a third
//! watches `pg_locks` and `pg_stat_activity` to see which statement
//! blocks. In every interleaving the second writer either blocks on the
//! first and fails with the conflict once the first commits, or (when the
//! first had already committed) fails with it at once; never do both
//! succeed. The statements are the store's own (`hse_booking::postgres::
//! statements`, used by `postgres/bookings.rs` to insert a booking and by
//! `postgres/codes.rs` to issue a code: booking row share lock, the lock's
//! advisory lock, the cap count, the row), `PREPARE`d on each connection
//! and `EXECUTE`d with literal values; the last two tests run the Rust
//! store itself as the second writer and get the typed errors, `Overlap`
//! naming the winner and `AlreadyExists { entity: "door_code" }`.

use std::collections::VecDeque;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use hse_booking::codes::{self, DoorCodeRecord};
use hse_booking::door_code::DoorCode;
use hse_booking::model::Stay;
use hse_booking::policy::Grace;
use hse_booking::postgres::statements;
use hse_booking::{Booking, BookingError};
use hse_core::{AreaId, DeviceId};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use uuid::Uuid;

use crate::support::{World, at};

/// How a statement ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// SQLSTATE and constraint of the error.
    Failed(String, String),
}

/// One connection that runs statements sent to it, in order.
struct Session {
    statements: mpsc::UnboundedSender<(String, oneshot::Sender<Outcome>)>,
    pid: i32,
}

/// The store's statements under the names the scripts `EXECUTE`.
const PREPARED: [(&str, &str); 5] = [
    ("insert_booking", statements::INSERT_BOOKING),
    ("lock_booking_for_code", statements::LOCK_BOOKING_FOR_CODE),
    ("lock_door_lock", statements::LOCK_DOOR_LOCK),
    ("count_live_codes", statements::COUNT_LIVE_CODES),
    ("insert_code", statements::INSERT_CODE),
];

/// A connection of its own with the store's statements prepared.
async fn connect(pool: &PgPool) -> PgConnection {
    let mut conn = PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    for (name, sql) in PREPARED {
        sqlx::raw_sql(&format!("PREPARE {name} AS {sql}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn
}

impl Session {
    async fn open(pool: &PgPool) -> Self {
        let mut conn = connect(pool).await;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let (statements, mut incoming) = mpsc::unbounded_channel::<(String, oneshot::Sender<_>)>();
        tokio::spawn(async move {
            while let Some((sql, reply)) = incoming.recv().await {
                let _ = reply.send(run(&mut conn, &sql).await);
            }
        });
        Self { statements, pid }
    }
}

/// Runs one statement; an error must be the database's.
async fn run(conn: &mut PgConnection, sql: &str) -> Outcome {
    match sqlx::query(sql).execute(conn).await {
        Ok(_) => Outcome::Ok,
        Err(e) => {
            let db = e.as_database_error().expect("a database error");
            Outcome::Failed(
                db.code().unwrap_or_default().into_owned(),
                db.constraint().unwrap_or_default().to_owned(),
            )
        }
    }
}

/// What one step did.
#[derive(Clone, Debug)]
struct Step {
    session: usize,
    index: usize,
    /// When it was issued (steps of both sessions counted together).
    issued: usize,
    /// The lock it waited for (`wait_event`), if it blocked.
    blocked_on: Option<String>,
    outcome: Outcome,
}

/// A statement still running: its step, the reply to come, and the lock
/// it waits for.
type Pending = (Step, oneshot::Receiver<Outcome>);

/// The `wait_event` of `pid` if it waits for a lock it was not granted.
async fn lock_wait(observer: &PgPool, pid: i32) -> Option<String> {
    sqlx::query_scalar(
        "SELECT a.wait_event FROM pg_stat_activity a
         WHERE a.pid = $1 AND a.wait_event_type = 'Lock'
           AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted)",
    )
    .bind(pid)
    .fetch_optional(observer)
    .await
    .unwrap()
}

/// Waits until the statement of `step` answers (`Ok`, the step done) or
/// is seen blocked (`Err`, the step pending with its lock).
async fn settle(
    observer: &PgPool,
    pid: i32,
    mut step: Step,
    mut reply: oneshot::Receiver<Outcome>,
) -> Result<Step, Pending> {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        if let Ok(outcome) = timeout(StdDuration::from_millis(3), &mut reply).await {
            step.outcome = outcome.expect("the session answers");
            return Ok(step);
        }
        if step.blocked_on.is_none() {
            step.blocked_on = lock_wait(observer, pid).await;
            if step.blocked_on.is_some() {
                return Err((step, reply));
            }
        } else if lock_wait(observer, pid).await.is_some() {
            return Err((step, reply));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a statement neither ended nor blocked: {step:?}"
        );
    }
}

/// Runs the two sessions' `scripts` in `order` (session numbers); a step
/// of a blocked session waits until the other session's steps unblock it.
async fn interleave(
    pool: &PgPool,
    sessions: &[Session; 2],
    scripts: &[Vec<String>; 2],
    order: &[usize],
) -> Vec<Step> {
    let mut next = [0usize; 2];
    let mut pending: [Option<Pending>; 2] = [None, None];
    let mut trace = Vec::new();
    let mut queue: VecDeque<usize> = order.iter().copied().collect();
    while let Some(mut who) = queue.pop_front() {
        if pending[who].is_some() {
            let Some(pos) = queue.iter().position(|&w| w != who) else {
                panic!("session {who} stays blocked with nothing left to run: {trace:?}");
            };
            queue.remove(pos);
            queue.push_front(who);
            who = 1 - who;
        }
        let step = Step {
            session: who,
            index: next[who],
            issued: next[0] + next[1],
            blocked_on: None,
            outcome: Outcome::Ok,
        };
        next[who] += 1;
        let (reply, answer) = oneshot::channel();
        let sql = scripts[who][step.index].clone();
        sessions[who].statements.send((sql, reply)).unwrap();
        match settle(pool, sessions[who].pid, step, answer).await {
            Ok(done) => trace.push(done),
            Err(blocked) => pending[who] = Some(blocked),
        }
        let other = 1 - who;
        if let Some((step, answer)) = pending[other].take() {
            match settle(pool, sessions[other].pid, step, answer).await {
                Ok(done) => trace.push(done),
                Err(blocked) => pending[other] = Some(blocked),
            }
        }
    }
    assert!(
        pending.iter().all(Option::is_none),
        "a statement is still blocked at the end: {trace:?}"
    );
    trace
}

/// Every order of `a` steps of session 0 and `b` of session 1.
fn interleavings(a: usize, b: usize) -> Vec<Vec<usize>> {
    if a == 0 || b == 0 {
        return vec![[vec![0; a], vec![1; b]].concat()];
    }
    let mut all = Vec::new();
    for (first, rest) in [(0, interleavings(a - 1, b)), (1, interleavings(a, b - 1))] {
        all.extend(rest.into_iter().map(|r| [vec![first], r].concat()));
    }
    all
}

/// The step `index` of `session`.
fn step(trace: &[Step], session: usize, index: usize) -> &Step {
    trace
        .iter()
        .find(|s| s.session == session && s.index == index)
        .unwrap_or_else(|| panic!("step {session}.{index} never ran: {trace:?}"))
}

/// Checks one interleaving: the session that issued its `gate` step first
/// won and committed at `commit`; the other's `gate` step blocked on
/// `lock` exactly when it was issued while the winner's transaction held
/// it, and its `write` step failed on `constraint`.
fn check_second_writer_blocks_then_fails(
    trace: &[Step],
    gate: usize,
    write: usize,
    commit: usize,
    constraint: &str,
    lock: &str,
) {
    let winner = usize::from(step(trace, 1, gate).issued < step(trace, 0, gate).issued);
    let loser = 1 - winner;
    for index in 0..=commit {
        assert_eq!(step(trace, winner, index).outcome, Outcome::Ok, "{trace:?}");
    }
    let held = step(trace, winner, gate).issued..step(trace, winner, commit).issued;
    let contender = step(trace, loser, gate);
    let expected = held.contains(&contender.issued).then(|| lock.to_owned());
    assert_eq!(contender.blocked_on, expected, "{trace:?}");
    assert_eq!(
        step(trace, loser, write).outcome,
        Outcome::Failed("23P01".into(), constraint.into()),
        "{trace:?}"
    );
}

fn literal(t: DateTime<Utc>) -> String {
    format!("'{}'", t.to_rfc3339())
}

/// An optional instant as an SQL literal.
fn maybe(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "NULL".to_owned(), literal)
}

/// `EXECUTE` of the prepared `statement` with SQL literal `values`.
fn execute(statement: &str, values: &[String]) -> String {
    format!("EXECUTE {statement}({})", values.join(", "))
}

/// A uuid as an SQL literal.
fn id(u: Uuid) -> String {
    format!("'{u}'")
}

/// The store's insert of a pending booking of `area`
/// ([`statements::INSERT_BOOKING`]).
fn insert_booking(w: &World, booking: Uuid, area: AreaId, from: i64, to: i64) -> String {
    let (check_in, check_out) = (at(from), at(to));
    let code = booking.simple().to_string().to_uppercase()[..8].replace(['0', '1', 'O', 'I'], "X");
    execute(
        "insert_booking",
        &[
            id(w.est.organization_id.as_uuid()),
            id(w.est.id.as_uuid()),
            id(area.as_uuid()),
            id(w.guest.id.as_uuid()),
            literal(check_in),
            literal(check_out),
            literal(check_out + Duration::hours(1)),
            "'pending'".into(),
            format!("'{code}'"),
            "''".into(),
            "1".into(),
            "'{}'".into(),
            id(w.admin.user_id.as_uuid()),
            "now()".into(),
            "now()".into(),
            "NULL".into(),
            "NULL".into(),
            "NULL".into(),
            id(booking),
        ],
    )
}

#[sqlx::test(migrations = false)]
async fn booking_creation_in_every_interleaving_of_two_writers(pool: PgPool) {
    let w = World::postgres(pool.clone()).await;
    let room = w.rooms[0];
    let orders = interleavings(3, 3);
    assert_eq!(orders.len(), 20);
    let sessions = [Session::open(&pool).await, Session::open(&pool).await];
    let mut blocked = 0;
    for (round, order) in orders.iter().enumerate() {
        // Each round books its own stretch of time: hours 100·round + …
        let base = 100 * round as i64;
        let ids = [Uuid::new_v4(), Uuid::new_v4()];
        let script = |n: usize, from: i64, to: i64| {
            vec![
                "BEGIN".to_owned(),
                insert_booking(&w, ids[n], room, base + from, base + to),
                "COMMIT".to_owned(),
            ]
        };
        let scripts = [script(0, 10, 30), script(1, 20, 40)];
        let trace = interleave(&pool, &sessions, &scripts, order).await;
        check_second_writer_blocks_then_fails(
            &trace,
            1,
            1,
            2,
            "bookings_no_overlap",
            "transactionid",
        );
        blocked += usize::from(trace.iter().any(|s| s.blocked_on.is_some()));
        let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM bookings WHERE id = ANY($1)")
            .bind(&ids[..])
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "order {order:?}: {trace:?}");
    }
    eprintln!(
        "{blocked} of {} interleavings blocked the second writer",
        orders.len()
    );
    assert!(blocked > 0 && blocked < orders.len(), "{blocked}");
}

/// Two overlapping confirmed bookings in two rooms under one building
/// lock, and the code each would get on it: the same PIN.
async fn code_world(pool: &PgPool) -> (World, DeviceId, [DoorCodeRecord; 2]) {
    let w = World::with_rooms(Some(pool.clone()), 2, false).await;
    let lock = w.add_lock(w.building, serde_json::json!({})).await;
    let mut records = Vec::new();
    for (room, from) in [(w.rooms[0], 10), (w.rooms[1], 12)] {
        let booking: Booking = w.book(room, from, from + 24).await;
        sqlx::query("UPDATE bookings SET status = 'confirmed' WHERE id = $1")
            .bind(booking.id.as_uuid())
            .execute(pool)
            .await
            .unwrap();
        let pin = DoorCode::parse("4711").unwrap();
        records.push(codes::issue(
            &booking,
            lock,
            pin,
            Grace::default(),
            5,
            None,
            Utc::now(),
        ));
    }
    let records: [DoorCodeRecord; 2] = records.try_into().unwrap();
    (w, lock, records)
}

/// The store's issuance of `c` (`postgres/codes.rs`), statement by
/// statement.
fn issue_code(c: &DoorCodeRecord) -> Vec<String> {
    let booking = id(c.booking_id.expect("a booking").as_uuid());
    let (device, area) = (id(c.device_id.as_uuid()), id(c.area_id.as_uuid()));
    let (from, until) = (literal(c.valid_from), literal(c.valid_until));
    vec![
        "BEGIN".to_owned(),
        execute("lock_booking_for_code", &[booking, area]),
        execute("lock_door_lock", std::slice::from_ref(&device)),
        execute(
            "count_live_codes",
            &[device, from, until, id(c.id.as_uuid())],
        ),
        execute("insert_code", &code_row(c)),
        "COMMIT".to_owned(),
    ]
}

/// The values of [`statements::INSERT_CODE`] for `c`.
fn code_row(c: &DoorCodeRecord) -> Vec<String> {
    let number = |n: u32| n.to_string();
    vec![
        id(c.id.as_uuid()),
        id(c.booking_id.expect("a booking").as_uuid()),
        id(c.tenancy.organization_id.as_uuid()),
        id(c.establishment_id.as_uuid()),
        id(c.area_id.as_uuid()),
        id(c.device_id.as_uuid()),
        format!("'{}'", c.code.expose()),
        literal(c.valid_from),
        literal(c.valid_until),
        c.grace.early.num_minutes().to_string(),
        c.grace.late.num_minutes().to_string(),
        format!("'{}'", c.state.as_str()),
        "NULL".into(),
        number(c.attempts),
        maybe(c.next_attempt_at),
        number(c.usage_count),
        c.max_usages.map_or_else(|| "NULL".to_owned(), number),
        number(c.lock_cap),
        c.version.to_string(),
        literal(c.created_at),
        literal(c.updated_at),
    ]
}

#[sqlx::test(migrations = false)]
async fn code_issuance_in_every_interleaving_of_two_writers(pool: PgPool) {
    let (_w, lock, records) = code_world(&pool).await;
    let orders = interleavings(6, 6);
    assert_eq!(orders.len(), 924);
    let sessions = [Session::open(&pool).await, Session::open(&pool).await];
    let mut blocked = 0;
    for order in &orders {
        let fresh = records.clone().map(|mut c| {
            c.id = hse_booking::DoorCodeId::new();
            c
        });
        let scripts = [issue_code(&fresh[0]), issue_code(&fresh[1])];
        let trace = interleave(&pool, &sessions, &scripts, order).await;
        check_second_writer_blocks_then_fails(
            &trace,
            2,
            4,
            5,
            "door_codes_unique_per_lock",
            "advisory",
        );
        blocked += usize::from(trace.iter().any(|s| s.blocked_on.is_some()));
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM door_codes WHERE device_id = $1 AND id = ANY($2)",
        )
        .bind(lock.as_uuid())
        .bind(fresh.iter().map(|c| c.id.as_uuid()).collect::<Vec<_>>())
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(live, 1, "order {order:?}: {trace:?}");
        sqlx::query("DELETE FROM door_codes")
            .execute(&pool)
            .await
            .unwrap();
    }
    // The interleavings where the second writer reached the lock while the
    // first held it: the advisory lock is held from step 2 to the commit.
    eprintln!(
        "{blocked} of {} interleavings blocked the second writer",
        orders.len()
    );
    assert!(blocked > 0 && blocked < orders.len(), "{blocked}");
}

/// Waits until some other backend of this database waits for a lock.
async fn someone_blocked(pool: &PgPool) -> String {
    for _ in 0..2000 {
        let event: Option<String> = sqlx::query_scalar(
            "SELECT wait_event FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' LIMIT 1",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(event) = event {
            return event;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    panic!("the store's write never blocked");
}

#[sqlx::test(migrations = false)]
async fn the_store_blocks_behind_an_open_booking_then_reports_the_overlap(pool: PgPool) {
    let w = World::postgres(pool.clone()).await;
    let room = w.rooms[0];
    let mut conn = connect(&pool).await;
    for end in ["COMMIT", "ROLLBACK"] {
        let base = if end == "COMMIT" { 0 } else { 1000 };
        let first = Uuid::new_v4();
        let insert = insert_booking(&w, first, room, base + 10, base + 30);
        for statement in ["BEGIN", insert.as_str()] {
            sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
        }
        let mut request = w.request(room, 0, 0);
        request.stay = Stay::Instants {
            check_in: at(base + 20),
            check_out: at(base + 40),
        };
        let (service, admin) = (w.service.clone(), w.admin.clone());
        let second =
            tokio::spawn(async move { service.create_booking(&admin, request, Utc::now()).await });
        assert_eq!(someone_blocked(&pool).await, "transactionid");
        assert!(!second.is_finished(), "it waits for the first to end");
        sqlx::raw_sql(end).execute(&mut conn).await.unwrap();
        let result = second.await.unwrap();
        match end {
            "COMMIT" => assert!(
                matches!(result, Err(BookingError::Overlap { with }) if with.as_uuid() == first),
                "{result:?}"
            ),
            _ => assert!(result.is_ok(), "{result:?}"),
        }
    }
}

#[sqlx::test(migrations = false)]
async fn the_store_blocks_behind_an_open_issuance_then_reports_the_collision(pool: PgPool) {
    let (w, _lock, records) = code_world(&pool).await;
    let mut conn = connect(&pool).await;
    for end in ["COMMIT", "ROLLBACK"] {
        sqlx::query("DELETE FROM door_codes")
            .execute(&pool)
            .await
            .unwrap();
        let fresh = records.clone().map(|mut c| {
            c.id = hse_booking::DoorCodeId::new();
            c
        });
        for statement in &issue_code(&fresh[0])[..5] {
            sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
        }
        let (store, second) = (w.store.clone(), fresh[1].clone());
        let issuing = tokio::spawn(async move { store.insert_code(&second, 5, &[]).await });
        assert_eq!(someone_blocked(&pool).await, "advisory");
        assert!(!issuing.is_finished(), "it waits for the lock's issuer");
        sqlx::raw_sql(end).execute(&mut conn).await.unwrap();
        let result = issuing.await.unwrap();
        match end {
            "COMMIT" => assert!(
                matches!(
                    result,
                    Err(BookingError::AlreadyExists {
                        entity: "door_code"
                    })
                ),
                "{result:?}"
            ),
            _ => assert!(result.is_ok(), "{result:?}"),
        }
    }
}
