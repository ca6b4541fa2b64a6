//! Guests and bookings over HTTP: guests and their companions, area
//! availability, bookings and their life (confirm, cancel, modify, delete),
//! and each booking's door codes and notifications. Handlers are thin:
//! parse, call [`hse_booking::Bookings`], answer.
//!
//! # Door-code PINs
//! `GET /v1/bookings/{id}/doorlock-codes` shows a code's PIN only to
//! callers who may *update* that booking (the staff who run it, and could
//! cancel or re-issue it anyway); callers who may only read it (reporting
//! tools, read-only API keys) get `code: null` with the sync state. The
//! check-in message of `GET /v1/bookings/{id}/notifications`, which
//! carries the PIN, follows the same rule. Answers are `no-store`, and no
//! PIN is ever logged: the server logs ids, never codes or messages.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use hse_booking::codes::{CodeState, DoorCodeRecord};
use hse_booking::model::{BookingPatch, Companion, GuestPatch, NewBooking, NewGuest};
use hse_booking::notification::{ChannelKind, Notification, NotificationKind, NotificationStatus};
use hse_booking::store::BookingFilter;
use hse_booking::{Booking, BookingId, BookingWindow, DoorCodeId, Guest, GuestId, NotificationId};
use hse_core::{ActionName, AreaId, DeviceId, Listing, Principal, authorize};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

type Answer<T> = Result<Json<T>, ApiError>;
type Created<T> = Result<(StatusCode, Json<T>), ApiError>;

fn created<T>(value: T) -> Created<T> {
    Ok((StatusCode::CREATED, Json(value)))
}

/// A whole, unpaged collection in the list shape.
fn all<T>(items: Vec<T>) -> Listing<T> {
    Listing {
        items,
        next_cursor: None,
    }
}

/// The guest and booking routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/guests", post(create_guest).get(list_guests))
        .route("/v1/guests/{id}", get(get_guest).patch(update_guest))
        .route(
            "/v1/guests/{id}/companions",
            post(add_companion).get(companions),
        )
        .route("/v1/areas/{id}/availability", get(availability))
        .route("/v1/bookings", post(create_booking).get(list_bookings))
        .route(
            "/v1/bookings/{id}",
            get(get_booking)
                .patch(update_booking)
                .delete(delete_booking),
        )
        .route("/v1/bookings/{id}/confirm", post(confirm))
        .route("/v1/bookings/{id}/cancel", post(cancel))
        .route("/v1/bookings/{id}/doorlock-codes", get(door_codes))
        .route("/v1/bookings/{id}/notifications", get(notifications))
}

// ----- guests ---------------------------------------------------------

#[utoipa::path(post, path = "/v1/guests", tag = "bookings", request_body = NewGuest, responses((status = 201, body = Guest), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_guest(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewGuest>,
) -> Created<Guest> {
    created(
        s.bookings
            .create_guest(&c.principal, body, Utc::now())
            .await?,
    )
}

#[utoipa::path(get, path = "/v1/guests", tag = "bookings", params(ListQuery), responses((status = 200, body = Listing<Guest>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_guests(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Answer<Listing<Guest>> {
    Ok(Json(s.bookings.list_guests(&c.principal, q.page()?).await?))
}

#[utoipa::path(get, path = "/v1/guests/{id}", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Guest), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_guest(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<GuestId>,
) -> Answer<Guest> {
    Ok(Json(s.bookings.guest(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/guests/{id}", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = GuestPatch, responses((status = 200, body = Guest), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_guest(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<GuestId>,
    ApiJson(patch): ApiJson<GuestPatch>,
) -> Answer<Guest> {
    let guest = s
        .bookings
        .update_guest(&c.principal, id, patch, Utc::now())
        .await?;
    Ok(Json(guest))
}

/// `POST /v1/guests/{id}/companions` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCompanion {
    /// The other guest (same organization).
    companion_id: GuestId,
    /// `spouse`, `child`, `friend`, ... (1–50 characters).
    relationship: String,
}

#[utoipa::path(post, path = "/v1/guests/{id}/companions", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the guest")), request_body = NewCompanion, responses((status = 201, body = Companion), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn add_companion(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<GuestId>,
    ApiJson(body): ApiJson<NewCompanion>,
) -> Created<Companion> {
    let link = s
        .bookings
        .add_companion(
            &c.principal,
            id,
            body.companion_id,
            &body.relationship,
            Utc::now(),
        )
        .await?;
    created(link)
}

#[utoipa::path(get, path = "/v1/guests/{id}/companions", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the guest")), responses((status = 200, body = Listing<Companion>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn companions(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<GuestId>,
) -> Answer<Listing<Companion>> {
    Ok(Json(all(s.bookings.companions(&c.principal, id).await?)))
}

// ----- availability ---------------------------------------------------

/// `GET /v1/areas/{id}/availability` range.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// Start of the range (RFC 3339).
    from: DateTime<Utc>,
    /// End of the range (RFC 3339), after `from`, at most 366 days later.
    to: DateTime<Utc>,
}

/// The free intervals of an area within a range, honouring the turnover
/// gap around existing bookings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Availability {
    /// The area.
    area_id: AreaId,
    /// Start of the range asked for.
    from: DateTime<Utc>,
    /// End of the range asked for.
    to: DateTime<Utc>,
    /// Where a stay may be, in time order.
    free: Vec<FreeInterval>,
}

/// A free interval: a stay may check in at `from` and check out by `to`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FreeInterval {
    /// Earliest check-in.
    from: DateTime<Utc>,
    /// Latest check-out.
    to: DateTime<Utc>,
}

#[utoipa::path(get, path = "/v1/areas/{id}/availability", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the area"), AvailabilityQuery), responses((status = 200, body = Availability), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn availability(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<AreaId>,
    ApiQuery(q): ApiQuery<AvailabilityQuery>,
) -> Answer<Availability> {
    let within =
        BookingWindow::new(q.from, q.to).map_err(|e| ApiError::invalid("to", e.to_string()))?;
    let free = s.bookings.availability(&c.principal, id, within).await?;
    Ok(Json(Availability {
        area_id: id,
        from: q.from,
        to: q.to,
        free: free
            .into_iter()
            .map(|w| FreeInterval {
                from: w.check_in(),
                to: w.check_out(),
            })
            .collect(),
    }))
}

// ----- bookings -------------------------------------------------------

/// `GET /v1/bookings` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingQuery {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<uuid::Uuid>,
    /// Only this area's bookings.
    area_id: Option<AreaId>,
    /// Only this guest's bookings.
    guest_id: Option<GuestId>,
}

#[utoipa::path(post, path = "/v1/bookings", tag = "bookings", request_body = NewBooking, responses((status = 201, body = Booking), (status = 409, description = "`booking_conflict`: the area is taken; `conflicting_booking_id` names the booking in the way", body = Problem, content_type = "application/problem+json"), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_booking(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewBooking>,
) -> Created<Booking> {
    created(
        s.bookings
            .create_booking(&c.principal, body, Utc::now())
            .await?,
    )
}

#[utoipa::path(get, path = "/v1/bookings", tag = "bookings", params(BookingQuery), responses((status = 200, body = Listing<Booking>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_bookings(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<BookingQuery>,
) -> Answer<Listing<Booking>> {
    let page = ListQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = BookingFilter {
        area_id: q.area_id,
        guest_id: q.guest_id,
    };
    Ok(Json(
        s.bookings.list_bookings(&c.principal, filter, page).await?,
    ))
}

#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Booking), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_booking(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<BookingId>,
) -> Answer<Booking> {
    Ok(Json(s.bookings.booking(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/bookings/{id}", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = BookingPatch, responses((status = 200, body = Booking), (status = 409, description = "`booking_conflict`", body = Problem, content_type = "application/problem+json"), (status = 422, description = "`illegal_transition`: only pending or confirmed bookings change", body = Problem, content_type = "application/problem+json"), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_booking(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<BookingId>,
    ApiJson(patch): ApiJson<BookingPatch>,
) -> Answer<Booking> {
    let booking = s
        .bookings
        .modify(&c.principal, id, patch, Utc::now())
        .await?;
    Ok(Json(booking))
}

#[utoipa::path(delete, path = "/v1/bookings/{id}", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = 422, description = "`illegal_transition`: only pending or confirmed bookings are deleted", body = Problem, content_type = "application/problem+json"), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_booking(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<BookingId>,
) -> Result<StatusCode, ApiError> {
    s.bookings.delete(&c.principal, id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/bookings/{id}/confirm", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Booking), (status = 422, description = "`illegal_transition`: only pending bookings are confirmed", body = Problem, content_type = "application/problem+json"), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn confirm(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<BookingId>,
) -> Answer<Booking> {
    Ok(Json(
        s.bookings.confirm(&c.principal, id, Utc::now()).await?,
    ))
}

/// `POST /v1/bookings/{id}/cancel` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why, up to 1000 characters (may be empty).
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/v1/bookings/{id}/cancel", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the id")), request_body(content = Option<CancelRequest>, description = "optional: no body, `null`, or `{\"reason\": ...}`"), responses((status = 200, body = Booking), (status = 422, description = "`illegal_transition`: only pending or confirmed bookings are cancelled", body = Problem, content_type = "application/problem+json"), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn cancel(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<BookingId>,
    body: Result<Option<Json<Option<CancelRequest>>>, JsonRejection>,
) -> Answer<Booking> {
    let body = body?.and_then(|Json(b)| b).unwrap_or_default();
    let booking = s
        .bookings
        .cancel(&c.principal, id, &body.reason, Utc::now())
        .await?;
    Ok(Json(booking))
}

// ----- codes and notifications ----------------------------------------

/// Whether `p` may see the PINs of `booking` (see the module docs).
fn reveals_pins(p: &Principal, booking: &Booking) -> bool {
    ActionName::parse("update_booking").is_ok_and(|a| authorize(p, &a, &booking.resource()).is_ok())
}

/// A door code of a booking on one lock, with its sync state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DoorCodeView {
    /// The code's id, also its slot on the lock.
    id: DoorCodeId,
    /// The booking.
    booking_id: Option<BookingId>,
    /// The lock.
    device_id: DeviceId,
    /// The booked area the lock serves.
    area_id: AreaId,
    /// The PIN, only for callers who may update the booking; otherwise null.
    code: Option<String>,
    /// How many digits the PIN has.
    code_length: usize,
    /// Opens at.
    valid_from: DateTime<Utc>,
    /// Closes at.
    valid_until: DateTime<Utc>,
    /// Sync state: `pending` → `programming` → `active`, later `removing`
    /// → `removed`; `failed` when the lock refused it.
    state: CodeState,
    /// Why the lock refused it.
    failure_reason: Option<String>,
    /// Failed attempts to reach the lock since the last change.
    attempts: u32,
    /// When the server next tries to sync it (null: in sync).
    next_attempt_at: Option<DateTime<Utc>>,
    /// How many times it opened the lock.
    usage_count: u32,
    /// Removed after this many uses, if set.
    max_usages: Option<u32>,
    /// Last change.
    updated_at: DateTime<Utc>,
}

impl DoorCodeView {
    fn new(r: DoorCodeRecord, reveal: bool) -> Self {
        Self {
            id: r.id,
            booking_id: r.booking_id,
            device_id: r.device_id,
            area_id: r.area_id,
            code: reveal.then(|| r.code.expose().to_owned()),
            code_length: r.code.len(),
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            state: r.state,
            failure_reason: r.failure_reason,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            usage_count: r.usage_count,
            max_usages: r.max_usages,
            updated_at: r.updated_at,
        }
    }
}

#[utoipa::path(get, path = "/v1/bookings/{id}/doorlock-codes", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the booking")), responses((status = 200, body = Listing<DoorCodeView>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn door_codes(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<BookingId>,
) -> Answer<Listing<DoorCodeView>> {
    let booking = s.bookings.booking(&c.principal, id).await?;
    let reveal = reveals_pins(&c.principal, &booking);
    let codes = s.bookings.codes(&c.principal, id).await?;
    Ok(Json(all(codes
        .into_iter()
        .map(|r| DoorCodeView::new(r, reveal))
        .collect())))
}

/// A notification of a booking, with its delivery state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    /// Its id.
    id: NotificationId,
    /// The booking.
    booking_id: Option<BookingId>,
    /// The guest.
    guest_id: GuestId,
    /// What happened.
    kind: NotificationKind,
    /// How it travels.
    channel: ChannelKind,
    /// Email address, or `webhook`.
    recipient: String,
    /// Subject line.
    subject: String,
    /// Body text; null for check-in instructions (they carry the PIN)
    /// unless the caller may update the booking.
    message: Option<String>,
    /// `pending`, `sent` or `failed`.
    status: NotificationStatus,
    /// Failed attempts so far.
    attempts: u32,
    /// When delivery is next tried (null: done).
    next_attempt_at: Option<DateTime<Utc>>,
    /// The last delivery error.
    last_error: Option<String>,
    /// When it was delivered.
    sent_at: Option<DateTime<Utc>>,
    /// Creation time.
    created_at: DateTime<Utc>,
}

impl NotificationView {
    fn new(n: Notification, reveal: bool) -> Self {
        let shown = reveal || n.kind != NotificationKind::CheckInInstructions;
        Self {
            id: n.id,
            booking_id: n.booking_id,
            guest_id: n.guest_id,
            kind: n.kind,
            channel: n.channel,
            recipient: n.recipient,
            subject: n.subject,
            message: shown.then_some(n.message),
            status: n.status,
            attempts: n.attempts,
            next_attempt_at: n.next_attempt_at,
            last_error: n.last_error,
            sent_at: n.sent_at,
            created_at: n.created_at,
        }
    }
}

#[utoipa::path(get, path = "/v1/bookings/{id}/notifications", tag = "bookings", params(("id" = uuid::Uuid, Path, description = "the booking")), responses((status = 200, body = Listing<NotificationView>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn notifications(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<BookingId>,
) -> Answer<Listing<NotificationView>> {
    let booking = s.bookings.booking(&c.principal, id).await?;
    let reveal = reveals_pins(&c.principal, &booking);
    let sent = s.bookings.notifications(&c.principal, id).await?;
    Ok(Json(all(sent
        .into_iter()
        .map(|n| NotificationView::new(n, reveal))
        .collect())))
}
