//! The SQL of the store's statements whose concurrency is tested
//! statement by statement: `tests/booking/isolation.rs` `PREPARE`s these
//! very texts on raw connections and `EXECUTE`s them in every
//! interleaving, so a change here is tested as made. Not a stable API.

/// Inserts a booking. `$1` organization, `$2` establishment, `$3` area,
/// `$4` guest, `$5` check-in, `$6` check-out, `$7` blocked until, `$8`
/// status, `$9` confirmation code, `$10` special requests, `$11` total
/// guests, `$12` metadata, `$13` created by, `$14` created at, `$15`
/// updated at, `$16`–`$18` cancellation (at, by, reason), `$19` id.
pub const INSERT_BOOKING: &str = "INSERT INTO bookings (organization_id, establishment_id, area_id, guest_id, check_in, check_out,
     blocked_until, status, confirmation_code, special_requests, total_guests, metadata, created_by,
     created_at, updated_at, cancelled_at, cancelled_by, cancellation_reason, id)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

/// Takes the advisory lock of area `$1` (its id as text), held to commit,
/// so writes of bookings into one area run one after the other. The
/// exclusion constraint alone keeps bookings apart, but concurrent
/// overlapping inserts each wait on the other's uncommitted index entry,
/// and PostgreSQL breaks that deadlock only after `deadlock_timeout` (1 s)
/// by aborting one; queueing on the lock first avoids the deadlock.
pub const LOCK_AREA: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('hse-booking:area:' || $1::text, 0))";

/// Share-locks the booking a code is issued for (`$1`) and tells whether
/// it still wants codes in area `$2` (confirmed or in progress there).
pub const LOCK_BOOKING_FOR_CODE: &str = "SELECT status IN ('confirmed', 'in-progress') AND area_id = $2 FROM bookings WHERE id = $1 FOR SHARE";

/// Takes the advisory lock of door lock `$1` (its id as text), held to
/// commit, so issuances and reprogrammings on one lock are serialized.
pub const LOCK_DOOR_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('hse-booking:lock:' || $1::text, 0))";

/// Counts the live codes of door lock `$1` other than `$4` whose window
/// overlaps `[$2, $3)`.
pub const COUNT_LIVE_CODES: &str = "SELECT count(*) FROM door_codes
 WHERE device_id = $1 AND id <> $4 AND state NOT IN ('removed', 'failed')
   AND tstzrange(valid_from, valid_until, '[)') && tstzrange($2, $3, '[)')";

/// Inserts a door code. `$1` id, `$2` booking, `$3` organization, `$4`
/// establishment, `$5` area, `$6` device, `$7` code, `$8` valid from, `$9`
/// valid until, `$10`/`$11` early/late grace (minutes), `$12` state, `$13`
/// failure reason, `$14` attempts, `$15` next attempt at, `$16` usage
/// count, `$17` max usages, `$18` lock cap, `$19` version, `$20` created
/// at, `$21` updated at.
pub const INSERT_CODE: &str = "INSERT INTO door_codes (id, booking_id, organization_id, establishment_id, area_id, device_id, code,
     valid_from, valid_until, early_grace_minutes, late_grace_minutes, state, failure_reason, attempts,
     next_attempt_at, usage_count, max_usages, lock_cap, version, created_at, updated_at)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";
