//! PostgreSQL adapter of [`BookingStore`] (feature `postgres`).
//!
//! Schema: `hse-booking/migrations` (versions `20261128200xxx`, sharing
//! `_sqlx_migrations` with the other crates, whose versions each crate's
//! [`migrate`] ignores). The guarantees of the port live in the schema: the
//! exclusion constraint `bookings_no_overlap` makes double bookings
//! impossible, `door_codes_unique_per_lock` duplicate codes; a per-lock
//! advisory lock serializes the active-code cap; read-modify-write runs on
//! `FOR UPDATE` rows; claims use `FOR UPDATE SKIP LOCKED`. SQLSTATEs are
//! mapped where the query is made: `23P01` → overlap (with the conflicting
//! booking's id, queried) or code collision, `23505` → already exists,
//! `23503` → not found.

mod rows;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use hse_core::{AreaId, DeviceId, Listing, Page, Scope};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::codes::{self, DoorCodeRecord};
use crate::error::{BookingError, Result};
use crate::model::{Booking, BookingId, Companion, DoorCodeId, Guest, GuestId, GuestPatch};
use crate::notification::Notification;
use crate::store::{BookingFilter, BookingStore, DeleteCheck, Edit, StayMoves};
use crate::window::Blocked;
use rows::{BOOKING_COLUMNS, CODE_COLUMNS, GUEST_COLUMNS, NOTIFICATION_COLUMNS, int, minutes};

/// Applies hse-booking's migrations (after hse-core's). Idempotent.
///
/// # Errors
/// [`BookingError::Storage`] if a migration fails.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
        .run(pool)
        .await
        .map_err(|e| BookingError::Storage(format!("hse-booking migrations: {e}")))
}

/// The PostgreSQL [`BookingStore`].
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A store over `pool` (run [`migrate`] first).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

type Q<'q> = Query<'q, Postgres, PgArguments>;

/// A [`Scope`] as the first four query parameters.
struct ScopeArgs {
    kind: &'static str,
    partner: Option<Uuid>,
    org: Option<Uuid>,
    establishments: Vec<Uuid>,
}

fn scope_args(scope: &Scope) -> ScopeArgs {
    let none = |kind| ScopeArgs {
        kind,
        partner: None,
        org: None,
        establishments: Vec::new(),
    };
    match scope {
        Scope::Platform => none("platform"),
        Scope::Partner { partner_company_id } => ScopeArgs {
            partner: Some(partner_company_id.as_uuid()),
            ..none("partner")
        },
        Scope::Organization {
            organization_id,
            establishments,
        } => ScopeArgs {
            org: Some(organization_id.as_uuid()),
            establishments: establishments.iter().map(|e| e.as_uuid()).collect(),
            ..none("organization")
        },
        Scope::Nothing => none("nothing"),
    }
}

fn scoped<'q>(sql: &'q str, scope: &Scope) -> Q<'q> {
    let s = scope_args(scope);
    sqlx::query(sql)
        .bind(s.kind)
        .bind(s.partner)
        .bind(s.org)
        .bind(s.establishments)
}

/// `$1..$4` in SQL: the scope test of rows with an establishment (`t`).
macro_rules! in_scope {
    ($t:literal) => {
        concat!(
            "($1::text = 'platform' OR ($1 = 'partner' AND o.partner_company_id = $2::uuid) OR ($1 = 'organization' AND ",
            $t,
            ".organization_id = $3::uuid AND (",
            $t,
            ".establishment_id = ANY($4::uuid[]))))"
        )
    };
}

/// The same for guests, which belong to an organization only (`$4` unused
/// but typed).
const GUEST_IN_SCOPE: &str = "($1::text = 'platform' OR ($1 = 'partner' AND o.partner_company_id = $2::uuid) \
    OR ($1 = 'organization' AND g.organization_id = $3::uuid AND cardinality($4::uuid[]) >= 0))";

/// What a failed write broke.
enum Broke {
    BookingOverlap,
    CodeClash,
    Unique(String),
    ForeignKey(String),
    Check(String),
    Other,
}

fn broke(e: &sqlx::Error) -> Broke {
    let Some(db) = e.as_database_error() else {
        return Broke::Other;
    };
    let constraint = db.constraint().unwrap_or_default().to_owned();
    match db.code().as_deref() {
        Some("23P01") if constraint == "door_codes_unique_per_lock" => Broke::CodeClash,
        Some("23P01") => Broke::BookingOverlap,
        Some("23505") => Broke::Unique(constraint),
        Some("23503") => Broke::ForeignKey(constraint),
        Some("23514") => Broke::Check(constraint),
        _ => Broke::Other,
    }
}

/// Maps a write failure other than a booking overlap.
fn on_write(e: sqlx::Error) -> BookingError {
    match broke(&e) {
        Broke::CodeClash => BookingError::AlreadyExists {
            entity: "door_code",
        },
        Broke::Unique(c) if c.contains("confirmation_code") => BookingError::AlreadyExists {
            entity: "confirmation_code",
        },
        Broke::Unique(c) if c.starts_with("guest_companions") => BookingError::AlreadyExists {
            entity: "companion",
        },
        Broke::Unique(_) => BookingError::AlreadyExists { entity: "row" },
        Broke::ForeignKey(c) if c.contains("guest") => BookingError::not_found("guest"),
        Broke::ForeignKey(c) if c.contains("device") => BookingError::not_found("device"),
        Broke::ForeignKey(_) => BookingError::not_found("area"),
        Broke::Check(c) => BookingError::invalid("booking", format!("violates {c}")),
        Broke::BookingOverlap | Broke::Other => BookingError::from(e),
    }
}

/// A write that failed on the overlap constraint, or otherwise.
enum WriteError {
    Overlap,
    Other(BookingError),
}

impl From<BookingError> for WriteError {
    fn from(e: BookingError) -> Self {
        Self::Other(e)
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        match broke(&e) {
            Broke::BookingOverlap => Self::Overlap,
            _ => Self::Other(on_write(e)),
        }
    }
}

/// How many times a write whose conflicting booking vanished is retried.
const OVERLAP_RETRIES: usize = 5;

impl PgStore {
    /// The active booking of `b`'s area that conflicts with it, if any.
    async fn conflicting(&self, b: &Booking) -> Result<Option<BookingId>> {
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM bookings WHERE area_id = $1 AND id <> $2 AND status <> 'cancelled'
               AND tstzrange(check_in, blocked_until, '[)') && tstzrange($3, $4, '[)')
             ORDER BY check_in LIMIT 1",
        )
        .bind(b.area_id.as_uuid())
        .bind(b.id.as_uuid())
        .bind(b.window.check_in())
        .bind(b.blocked_until)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(Into::into))
    }

    /// The rows `sql` selects for a booking in scope (`$1`: its id).
    async fn of_booking<T>(
        &self,
        scope: &Scope,
        booking: BookingId,
        sql: &str,
        decode: fn(&PgRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.booking(scope, booking).await?;
        let rows = sqlx::query(sql)
            .bind(booking.as_uuid())
            .fetch_all(&self.pool)
            .await?;
        collect(&rows, decode)
    }

    /// Runs `write` until it succeeds or fails for a reason other than an
    /// overlap whose other booking has gone meanwhile.
    async fn with_overlap<T, F, Fut>(&self, write: F) -> Result<T>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, (WriteError, Option<Booking>)>> + Send,
        T: Send,
    {
        for _ in 0..OVERLAP_RETRIES {
            match write().await {
                Ok(v) => return Ok(v),
                Err((WriteError::Other(e), _)) => return Err(e),
                Err((WriteError::Overlap, booking)) => {
                    let Some(b) = booking else {
                        return Err(BookingError::Storage("overlap without a booking".into()));
                    };
                    if let Some(with) = self.conflicting(&b).await? {
                        return Err(BookingError::Overlap { with });
                    }
                }
            }
        }
        Err(BookingError::Storage("overlap kept vanishing".into()))
    }

    async fn try_insert_booking(
        &self,
        booking: &Booking,
        outbox: &[Notification],
    ) -> Result<(), WriteError> {
        let mut tx = self.pool.begin().await?;
        booking_query(
            "INSERT INTO bookings (organization_id, establishment_id, area_id, guest_id, check_in, check_out,
                 blocked_until, status, confirmation_code, special_requests, total_guests, metadata, created_by,
                 created_at, updated_at, cancelled_at, cancelled_by, cancellation_reason, id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            booking,
        )
        .execute(&mut *tx)
        .await?;
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_update_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        edit: Edit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Booking, (WriteError, Option<Booking>)> {
        let mut tx = self.pool.begin().await.map_err(|e| (e.into(), None))?;
        let current = lock_booking(&mut tx, scope, id)
            .await
            .map_err(|e| (e.into(), None))?;
        let change = edit(&current).map_err(|e| (e.into(), None))?;
        let next = change.booking;
        let fail = |e: WriteError| (e, Some(next.clone()));
        booking_query(
            "UPDATE bookings SET organization_id = $1, establishment_id = $2, area_id = $3, guest_id = $4,
                 check_in = $5, check_out = $6, blocked_until = $7, status = $8, confirmation_code = $9,
                 special_requests = $10, total_guests = $11, metadata = $12, created_by = $13, created_at = $14,
                 updated_at = $15, cancelled_at = $16, cancelled_by = $17, cancellation_reason = $18
             WHERE id = $19",
            &next,
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| fail(e.into()))?;
        insert_outbox(&mut tx, &change.outbox)
            .await
            .map_err(|e| fail(e.into()))?;
        follow_codes(&mut tx, id, Some(&next), now)
            .await
            .map_err(|e| fail(e.into()))?;
        tx.commit().await.map_err(|e| fail(e.into()))?;
        Ok(next)
    }
}

fn booking_query<'q>(sql: &'q str, b: &Booking) -> Q<'q> {
    let c = b.cancellation.as_ref();
    sqlx::query(sql)
        .bind(b.tenancy.organization_id.as_uuid())
        .bind(b.establishment_id.as_uuid())
        .bind(b.area_id.as_uuid())
        .bind(b.guest_id.as_uuid())
        .bind(b.window.check_in())
        .bind(b.window.check_out())
        .bind(b.blocked_until)
        .bind(b.status.as_str())
        .bind(b.confirmation_code.as_str().to_owned())
        .bind(b.special_requests.clone())
        .bind(i16::try_from(b.total_guests).unwrap_or(i16::MAX))
        .bind(serde_json::Value::from(b.metadata.clone()))
        .bind(b.created_by.as_uuid())
        .bind(b.created_at)
        .bind(b.updated_at)
        .bind(c.map(|c| c.at))
        .bind(c.map(|c| c.by.as_uuid()))
        .bind(c.map(|c| c.reason.clone()))
        .bind(b.id.as_uuid())
}

async fn lock_booking(
    tx: &mut Transaction<'_, Postgres>,
    scope: &Scope,
    id: BookingId,
) -> Result<Booking> {
    let sql = format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN organizations o ON o.id = b.organization_id
         WHERE b.id = $5 AND {} FOR UPDATE OF b",
        in_scope!("b")
    );
    let row = scoped(&sql, scope)
        .bind(id.as_uuid())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| BookingError::not_found("booking"))?;
    rows::booking(&row)
}

async fn insert_outbox(
    tx: &mut Transaction<'_, Postgres>,
    outbox: &[Notification],
) -> Result<(), sqlx::Error> {
    for n in outbox {
        sqlx::query(
            "INSERT INTO notifications (id, organization_id, booking_id, guest_id, kind, channel, recipient,
                 subject, message, status, attempts, next_attempt_at, last_error, sent_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(n.id.as_uuid())
        .bind(n.tenancy.organization_id.as_uuid())
        .bind(n.booking_id.map(|b| b.as_uuid()))
        .bind(n.guest_id.as_uuid())
        .bind(n.kind.as_str())
        .bind(n.channel.as_str())
        .bind(n.recipient.clone())
        .bind(n.subject.clone())
        .bind(n.message.clone())
        .bind(n.status.as_str())
        .bind(int(n.attempts))
        .bind(n.next_attempt_at)
        .bind(n.last_error.clone())
        .bind(n.sent_at)
        .bind(n.created_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Stores the mutable columns of a code (optionally only at `version`).
async fn store_code(
    tx: &mut Transaction<'_, Postgres>,
    c: &DoorCodeRecord,
    at_version: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE door_codes SET valid_from = $2, valid_until = $3, state = $4, failure_reason = $5,
             attempts = $6, next_attempt_at = $7, usage_count = $8, version = $9, updated_at = $10
         WHERE id = $1 AND ($11::bigint IS NULL OR version = $11)",
    )
    .bind(c.id.as_uuid())
    .bind(c.valid_from)
    .bind(c.valid_until)
    .bind(c.state.as_str())
    .bind(c.failure_reason.clone())
    .bind(int(c.attempts))
    .bind(c.next_attempt_at)
    .bind(int(c.usage_count))
    .bind(c.version)
    .bind(c.updated_at)
    .bind(at_version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn codes_where(
    tx: &mut Transaction<'_, Postgres>,
    condition: &str,
    id: Uuid,
) -> Result<Vec<DoorCodeRecord>> {
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM door_codes d JOIN organizations o ON o.id = d.organization_id
         WHERE {condition} FOR UPDATE OF d"
    );
    let rows = sqlx::query(&sql).bind(id).fetch_all(&mut **tx).await?;
    rows.iter().map(rows::code).collect()
}

/// Makes a booking's codes follow its change (`None`: deleted).
async fn follow_codes(
    tx: &mut Transaction<'_, Postgres>,
    id: BookingId,
    after: Option<&Booking>,
    now: DateTime<Utc>,
) -> Result<()> {
    for code in codes_where(tx, "d.booking_id = $1", id.as_uuid()).await? {
        if let Some(next) = codes::follow_booking(&code, after, now) {
            store_code(tx, &next, None).await.map_err(on_write)?;
        }
    }
    Ok(())
}

fn collect<T>(rows: &[PgRow], f: fn(&PgRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

#[async_trait]
impl BookingStore for PgStore {
    async fn insert_guest(&self, scope: &Scope, guest: &Guest) -> Result<()> {
        let resource = hse_core::Resource::organization(
            guest.tenancy.partner_company_id,
            guest.tenancy.organization_id,
        );
        if !scope.contains(&resource) {
            return Err(BookingError::not_found("organization"));
        }
        sqlx::query(
            "INSERT INTO guests (id, organization_id, first_name, last_name, email, phone, document_type,
                 document_number, country, metadata, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
             WHERE EXISTS (SELECT 1 FROM organizations o WHERE o.id = $2
                           AND o.partner_company_id IS NOT DISTINCT FROM $13)",
        )
        .bind(guest.id.as_uuid())
        .bind(guest.tenancy.organization_id.as_uuid())
        .bind(guest.first_name.clone())
        .bind(guest.last_name.clone())
        .bind(guest.email.as_ref().map(ToString::to_string))
        .bind(guest.phone.clone())
        .bind(guest.document_type.clone())
        .bind(guest.document_number.clone())
        .bind(guest.country.clone())
        .bind(serde_json::Value::from(guest.metadata.clone()))
        .bind(guest.created_at)
        .bind(guest.updated_at)
        .bind(guest.tenancy.partner_company_id.map(|p| p.as_uuid()))
        .execute(&self.pool)
        .await
        .map_err(on_write)
        .and_then(|r| match r.rows_affected() {
            1 => Ok(()),
            _ => Err(BookingError::not_found("organization")),
        })
    }

    async fn guest(&self, scope: &Scope, id: GuestId) -> Result<Guest> {
        let sql = format!(
            "SELECT {GUEST_COLUMNS} FROM guests g JOIN organizations o ON o.id = g.organization_id
             WHERE g.id = $5 AND {GUEST_IN_SCOPE}"
        );
        let row = scoped(&sql, scope)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| BookingError::not_found("guest"))?;
        rows::guest(&row)
    }

    async fn list_guests(&self, scope: &Scope, page: Page) -> Result<Listing<Guest>> {
        let sql = format!(
            "SELECT {GUEST_COLUMNS} FROM guests g JOIN organizations o ON o.id = g.organization_id
             WHERE {GUEST_IN_SCOPE} AND ($5::uuid IS NULL OR g.id > $5) ORDER BY g.id LIMIT $6"
        );
        let rows = scoped(&sql, scope)
            .bind(page.after())
            .bind(i64::from(page.limit()) + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(Listing::from_overfetch(
            collect(&rows, rows::guest)?,
            page,
            |g| g.id.as_uuid(),
        ))
    }

    async fn update_guest(
        &self,
        scope: &Scope,
        id: GuestId,
        patch: GuestPatch,
        now: DateTime<Utc>,
    ) -> Result<Guest> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {GUEST_COLUMNS} FROM guests g JOIN organizations o ON o.id = g.organization_id
             WHERE g.id = $5 AND {GUEST_IN_SCOPE} FOR UPDATE OF g"
        );
        let row = scoped(&sql, scope)
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| BookingError::not_found("guest"))?;
        let mut guest = rows::guest(&row)?;
        patch.apply(&mut guest, now)?;
        sqlx::query(
            "UPDATE guests SET first_name = $2, last_name = $3, email = $4, phone = $5, document_type = $6,
                 document_number = $7, country = $8, metadata = $9, updated_at = $10 WHERE id = $1",
        )
        .bind(guest.id.as_uuid())
        .bind(guest.first_name.clone())
        .bind(guest.last_name.clone())
        .bind(guest.email.as_ref().map(ToString::to_string))
        .bind(guest.phone.clone())
        .bind(guest.document_type.clone())
        .bind(guest.document_number.clone())
        .bind(guest.country.clone())
        .bind(serde_json::Value::from(guest.metadata.clone()))
        .bind(guest.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(on_write)?;
        tx.commit().await?;
        Ok(guest)
    }

    async fn add_companion(&self, scope: &Scope, link: &Companion) -> Result<()> {
        let a = self.guest(scope, link.guest_id).await?;
        let b = self.guest(scope, link.companion_id).await?;
        if a.tenancy.organization_id != b.tenancy.organization_id || a.id == b.id {
            return Err(BookingError::invalid(
                "companion_id",
                "must be another guest of the same organization",
            ));
        }
        sqlx::query(
            "INSERT INTO guest_companions (guest_id, companion_id, organization_id, relationship, added_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(link.guest_id.as_uuid())
        .bind(link.companion_id.as_uuid())
        .bind(a.tenancy.organization_id.as_uuid())
        .bind(link.relationship.clone())
        .bind(link.added_at)
        .execute(&self.pool)
        .await
        .map_err(on_write)?;
        Ok(())
    }

    async fn companions(&self, scope: &Scope, guest: GuestId) -> Result<Vec<Companion>> {
        self.guest(scope, guest).await?;
        let rows = sqlx::query(
            "SELECT guest_id, companion_id, relationship, added_at FROM guest_companions
             WHERE guest_id = $1 OR companion_id = $1 ORDER BY added_at",
        )
        .bind(guest.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let link = Companion {
                guest_id: row.try_get::<Uuid, _>("guest_id")?.into(),
                companion_id: row.try_get::<Uuid, _>("companion_id")?.into(),
                relationship: row.try_get("relationship")?,
                added_at: row.try_get("added_at")?,
            };
            out.extend(crate::memory::seen_from(&link, guest));
        }
        Ok(out)
    }

    async fn insert_booking(
        &self,
        scope: &Scope,
        booking: &Booking,
        outbox: &[Notification],
    ) -> Result<()> {
        if !scope.contains(&booking.resource()) {
            return Err(BookingError::not_found("area"));
        }
        self.with_overlap(|| async {
            self.try_insert_booking(booking, outbox)
                .await
                .map_err(|e| (e, Some(booking.clone())))
        })
        .await
    }

    async fn booking(&self, scope: &Scope, id: BookingId) -> Result<Booking> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN organizations o ON o.id = b.organization_id
             WHERE b.id = $5 AND {}",
            in_scope!("b")
        );
        let row = scoped(&sql, scope)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| BookingError::not_found("booking"))?;
        rows::booking(&row)
    }

    async fn list_bookings(
        &self,
        scope: &Scope,
        filter: BookingFilter,
        page: Page,
    ) -> Result<Listing<Booking>> {
        let sql = format!(
            "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN organizations o ON o.id = b.organization_id
             WHERE {} AND ($5::uuid IS NULL OR b.area_id = $5) AND ($6::uuid IS NULL OR b.guest_id = $6)
               AND ($7::uuid IS NULL OR b.id > $7) ORDER BY b.id LIMIT $8",
            in_scope!("b")
        );
        let rows = scoped(&sql, scope)
            .bind(filter.area_id.map(|a| a.as_uuid()))
            .bind(filter.guest_id.map(|g| g.as_uuid()))
            .bind(page.after())
            .bind(i64::from(page.limit()) + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(Listing::from_overfetch(
            collect(&rows, rows::booking)?,
            page,
            |b| b.id.as_uuid(),
        ))
    }

    async fn blocked(
        &self,
        scope: &Scope,
        area: AreaId,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Blocked>> {
        let sql = format!(
            "SELECT b.check_in, b.blocked_until FROM bookings b JOIN organizations o ON o.id = b.organization_id
             WHERE {} AND b.area_id = $5 AND b.status <> 'cancelled'
               AND tstzrange(b.check_in, b.blocked_until, '[)') && tstzrange($6, $7, '[)')
             ORDER BY b.check_in",
            in_scope!("b")
        );
        let rows = scoped(&sql, scope)
            .bind(area.as_uuid())
            .bind(from)
            .bind(until)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Blocked {
                    start: r.try_get("check_in")?,
                    end: r.try_get("blocked_until")?,
                })
            })
            .collect()
    }

    async fn update_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        edit: Edit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Booking> {
        self.with_overlap(|| self.try_update_booking(scope, id, edit, now))
            .await
    }

    async fn delete_booking(
        &self,
        scope: &Scope,
        id: BookingId,
        check: DeleteCheck<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let current = lock_booking(&mut tx, scope, id).await?;
        check(&current)?;
        follow_codes(&mut tx, id, None, now).await?;
        sqlx::query("DELETE FROM bookings WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_code(
        &self,
        code: &DoorCodeRecord,
        cap: u32,
        outbox: &[Notification],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let wants: Option<bool> = sqlx::query_scalar(
            "SELECT status IN ('confirmed', 'in-progress') AND area_id = $2 FROM bookings WHERE id = $1 FOR SHARE",
        )
        .bind(code.booking_id.map(|b| b.as_uuid()))
        .bind(code.area_id.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        if wants != Some(true) {
            return Err(BookingError::not_found("booking"));
        }
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('hse-booking:lock:' || $1::text, 0))",
        )
        .bind(code.device_id.as_uuid())
        .execute(&mut *tx)
        .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM door_codes WHERE device_id = $1 AND state NOT IN ('removed', 'failed')
               AND tstzrange(valid_from, valid_until, '[)') && tstzrange($2, $3, '[)')",
        )
        .bind(code.device_id.as_uuid())
        .bind(code.valid_from)
        .bind(code.valid_until)
        .fetch_one(&mut *tx)
        .await?;
        if live >= i64::from(cap) {
            return Err(BookingError::CodeCapReached {
                device: code.device_id,
                max: cap,
            });
        }
        insert_code_row(&mut tx, code).await.map_err(on_write)?;
        insert_outbox(&mut tx, outbox).await.map_err(on_write)?;
        tx.commit().await?;
        Ok(())
    }

    async fn codes_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<DoorCodeRecord>> {
        let sql = format!(
            "SELECT {CODE_COLUMNS} FROM door_codes d JOIN organizations o ON o.id = d.organization_id
             WHERE d.booking_id = $1 ORDER BY d.id"
        );
        self.of_booking(scope, booking, &sql, rows::code).await
    }

    async fn claim_codes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<DoorCodeRecord>> {
        let sql = format!(
            "WITH due AS (
                 SELECT id FROM door_codes
                 WHERE next_attempt_at <= $1 AND state NOT IN ('removed', 'failed')
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE door_codes d SET next_attempt_at = $2,
                     state = CASE WHEN d.state = 'pending' THEN 'programming' ELSE d.state END
                 FROM due WHERE d.id = due.id RETURNING d.*)
             SELECT {CODE_COLUMNS} FROM claimed d JOIN organizations o ON o.id = d.organization_id"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(now + lease)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        collect(&rows, rows::code)
    }

    async fn finish_code(&self, next: &DoorCodeRecord) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = store_code(&mut tx, next, Some(next.version))
            .await
            .map_err(on_write)?;
        tx.commit().await?;
        Ok(done)
    }

    async fn record_code_use(
        &self,
        device: DeviceId,
        code: DoorCodeId,
        now: DateTime<Utc>,
    ) -> Result<DoorCodeRecord> {
        let mut tx = self.pool.begin().await?;
        let mut c = codes_where(&mut tx, "d.id = $1", code.as_uuid())
            .await?
            .into_iter()
            .find(|c| c.device_id == device)
            .ok_or_else(|| BookingError::not_found("door_code"))?;
        c.usage_count = c.usage_count.saturating_add(1);
        c.updated_at = now;
        if c.max_usages.is_some_and(|m| c.usage_count >= m)
            && let Some(retired) = codes::retire(&c, now)
        {
            c = retired;
        }
        store_code(&mut tx, &c, None).await.map_err(on_write)?;
        tx.commit().await?;
        Ok(c)
    }

    async fn advance_stays(&self, now: DateTime<Utc>, limit: u32) -> Result<StayMoves> {
        let mut tx = self.pool.begin().await?;
        let checked_in: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE bookings SET status = 'in-progress', updated_at = $1
             WHERE id IN (SELECT id FROM bookings WHERE status = 'confirmed' AND check_in <= $1
                          ORDER BY check_in LIMIT $2 FOR UPDATE SKIP LOCKED)
               AND status = 'confirmed'
             RETURNING id",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let checked_out: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE bookings SET status = 'completed', updated_at = $1
             WHERE id IN (SELECT id FROM bookings WHERE status = 'in-progress' AND check_out <= $1
                          ORDER BY check_out LIMIT $2 FOR UPDATE SKIP LOCKED)
               AND status = 'in-progress'
             RETURNING id",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE door_codes SET state = 'removing', attempts = 0, next_attempt_at = $2,
                 version = version + 1, updated_at = $2
             WHERE booking_id = ANY($1) AND state IN ('pending', 'programming', 'active')",
        )
        .bind(&checked_out)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StayMoves {
            checked_in: checked_in.into_iter().map(Into::into).collect(),
            checked_out: checked_out.into_iter().map(Into::into).collect(),
        })
    }

    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let sql = format!(
            "WITH due AS (
                 SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= $1
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE notifications n SET next_attempt_at = $2 FROM due WHERE n.id = due.id RETURNING n.*)
             SELECT {NOTIFICATION_COLUMNS} FROM claimed n JOIN organizations o ON o.id = n.organization_id"
        );
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(now + lease)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        collect(&rows, rows::notification)
    }

    async fn finish_notification(&self, n: &Notification) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5,
                 sent_at = $6 WHERE id = $1",
        )
        .bind(n.id.as_uuid())
        .bind(n.status.as_str())
        .bind(int(n.attempts))
        .bind(n.next_attempt_at)
        .bind(n.last_error.clone())
        .bind(n.sent_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notifications_of_booking(
        &self,
        scope: &Scope,
        booking: BookingId,
    ) -> Result<Vec<Notification>> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications n JOIN organizations o ON o.id = n.organization_id
             WHERE n.booking_id = $1 ORDER BY n.id"
        );
        self.of_booking(scope, booking, &sql, rows::notification)
            .await
    }
}

async fn insert_code_row(
    tx: &mut Transaction<'_, Postgres>,
    c: &DoorCodeRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO door_codes (id, booking_id, organization_id, establishment_id, area_id, device_id, code,
             valid_from, valid_until, early_grace_minutes, late_grace_minutes, state, failure_reason, attempts,
             next_attempt_at, usage_count, max_usages, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(c.id.as_uuid())
    .bind(c.booking_id.map(|b| b.as_uuid()))
    .bind(c.tenancy.organization_id.as_uuid())
    .bind(c.establishment_id.as_uuid())
    .bind(c.area_id.as_uuid())
    .bind(c.device_id.as_uuid())
    .bind(c.code.expose().to_owned())
    .bind(c.valid_from)
    .bind(c.valid_until)
    .bind(minutes(c.grace.early))
    .bind(minutes(c.grace.late))
    .bind(c.state.as_str())
    .bind(c.failure_reason.clone())
    .bind(int(c.attempts))
    .bind(c.next_attempt_at)
    .bind(int(c.usage_count))
    .bind(c.max_usages.map(int))
    .bind(c.version)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
