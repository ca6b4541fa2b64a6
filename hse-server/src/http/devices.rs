//! Devices over HTTP: current state, stored events and rollups, commands,
//! and the device WebSocket (dead letters: [`super::dead_letters`]).
//!
//! Every device route first authorizes the caller on the device's place in
//! the tenant tree (`read_device`, through [`hse_core::Tenancy::authorize`]
//! and its placement cache), so a device of another tenant is 404 whatever
//! the route; commands then need `command_device` on it, a type that is
//! not a door code's (those belong to the booking module), and a tenant
//! that is not suspended. The status read then touches only Redis: no
//! PostgreSQL round trip while the placement is cached.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, TimeZone, Utc};
use hse_core::{ActionName, CoreError, DeviceId, Principal, Resource, Target, authorize};
use hse_devices::commands::{Command, DEFAULT_COMMAND_TIMEOUT, is_door_code_command};
use hse_devices::history::{Aggregate, Bucket, EventQuery};
use hse_devices::model::{Event, EventType};
use hse_devices::state::DeviceState;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::devices::websocket;
use crate::state::AppState;

type Answer<T> = Result<Json<T>, ApiError>;

/// Default and largest page of events.
pub(super) const DEFAULT_LIMIT: u32 = 50;
pub(super) const MAX_LIMIT: u32 = 500;
/// Longest command timeout a caller may ask for: under the request
/// timeout, so a silent device is always `device_timeout`, never a 408.
const MAX_COMMAND_TIMEOUT_MS: u64 = 25_000;
const _: () = assert!((MAX_COMMAND_TIMEOUT_MS as u128) < super::REQUEST_TIMEOUT.as_millis());
/// Largest command params, serialized (a device frame is at most 256 KiB).
const MAX_PARAMS_BYTES: usize = 16 * 1024;
/// Longest aggregates range.
const MAX_AGGREGATE_DAYS: i64 = 400;
/// Largest WebSocket message accepted: twice the frame limit, so a frame
/// over `MAX_FRAME_BYTES` (256 KiB) reaches the session, which refuses it
/// with `frame_too_large` as on TCP.
const MAX_WS_MESSAGE: usize = 2 * hse_devices::codec::MAX_FRAME_BYTES;

/// The device routes of the `api` role.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/devices/{id}/status", get(status))
        .route("/v1/devices/{id}/events", get(events))
        .route("/v1/devices/{id}/aggregates", get(aggregates))
        .route("/v1/devices/{id}/commands", post(command))
}

/// The device WebSocket of the `ingest` role.
pub fn ws_routes() -> Router<AppState> {
    Router::new().route("/v1/devices/ws", get(device_socket))
}

pub(super) fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

pub(super) fn action(name: &str) -> Result<ActionName, ApiError> {
    Ok(ActionName::parse(name)?)
}

/// May `who` perform `name` on `device` (wherever it is placed)? A device
/// no longer in the tree is the platform's.
pub(super) async fn may(
    s: &AppState,
    who: &Principal,
    device: DeviceId,
    name: &str,
) -> Result<(), ApiError> {
    let resource = s
        .tenancy
        .locate(Target::Device(device))
        .await?
        .unwrap_or_else(Resource::platform);
    authorize(who, &action(name)?, &resource).map_err(|d| ApiError::from(CoreError::Denied(d)))
}

/// May `who` read `device`? Absent or another tenant's is 404.
async fn read_device(s: &AppState, who: &Principal, device: DeviceId) -> Result<(), ApiError> {
    let read = action("read_device")?;
    s.tenancy
        .authorize(who, &read, Target::Device(device), "device")
        .await?;
    Ok(())
}

// ----- status ---------------------------------------------------------

/// A device's current state, from the state cache.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceStatusView {
    /// The device.
    device_id: DeviceId,
    /// `online`, `offline`, or `error` (connected, latest event an error).
    status: &'static str,
    /// Whether a session is open (on any node).
    connected: bool,
    /// `tcp` or `websocket` while connected.
    protocol: Option<String>,
    /// Last time it was heard from.
    last_seen: Option<DateTime<Utc>>,
    /// The latest event of each type.
    last_events: BTreeMap<String, LastEventView>,
}

/// The latest event of one type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastEventView {
    /// Its id.
    event_id: Uuid,
    /// Device time.
    ts: DateTime<Utc>,
    /// Its value.
    value: Option<f64>,
    /// Its unit.
    unit: Option<String>,
}

fn status_view(device_id: DeviceId, state: Option<DeviceState>) -> DeviceStatusView {
    let state = state.unwrap_or_default();
    let connected = state.connection.connected;
    DeviceStatusView {
        device_id,
        status: state.status(),
        connected,
        protocol: connected.then(|| state.connection.protocol.clone()),
        last_seen: state.last_seen_ms.map(time),
        last_events: state
            .last_events
            .into_iter()
            .map(|(kind, e)| {
                let view = LastEventView {
                    event_id: e.event_id,
                    ts: time(e.ts_ms),
                    value: e.value,
                    unit: e.unit,
                };
                (kind, view)
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/v1/devices/{id}/status", tag = "devices", params(("id" = uuid::Uuid, Path, description = "the device")), responses((status = 200, body = DeviceStatusView), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn status(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<DeviceId>,
) -> Answer<DeviceStatusView> {
    read_device(&s, &c.principal, id).await?;
    let state = s.devices.state.get(id).await?;
    Ok(Json(status_view(id, state)))
}

// ----- events ---------------------------------------------------------

/// `GET /v1/devices/{id}/events` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// From this time (inclusive, RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Until this time (exclusive, RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Comma-separated event types (all when absent).
    event_types: Option<String>,
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One stored event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// Its id (idempotency key).
    event_id: Uuid,
    /// The device.
    device_id: DeviceId,
    /// Device time.
    ts: DateTime<Utc>,
    /// What happened.
    event_type: String,
    /// Its value.
    value: Option<f64>,
    /// Its unit.
    unit: Option<String>,
    /// Its metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// How it arrived (`tcp`, `websocket`, `grpc`).
    source: Option<String>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            event_id: e.event_id,
            device_id: e.device_id,
            ts: time(e.ts_ms),
            event_type: e.event_type.to_string(),
            value: e.value,
            unit: e.unit,
            metadata: e.metadata,
            source: e.source,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPageView {
    /// The events.
    items: Vec<EventView>,
    /// Cursor of the next (older) page.
    next_cursor: Option<String>,
}

fn event_types(list: Option<&str>) -> Result<Vec<EventType>, ApiError> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| EventType::parse(t).map_err(|e| ApiError::invalid("event_types", e.reason)))
        .collect()
}

#[utoipa::path(get, path = "/v1/devices/{id}/events", tag = "devices", params(("id" = uuid::Uuid, Path, description = "the device"), EventsQuery), responses((status = 200, body = EventPageView), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn events(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<DeviceId>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Answer<EventPageView> {
    read_device(&s, &c.principal, id).await?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1-500"));
    }
    let query = EventQuery {
        device_id: id,
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        types: event_types(q.event_types.as_deref())?,
        limit,
        cursor: q.cursor,
    };
    let page = s
        .devices
        .history
        .events(&c.principal.scope(), &query)
        .await?;
    Ok(Json(EventPageView {
        items: page.events.into_iter().map(EventView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

// ----- aggregates -----------------------------------------------------

/// Rollup granularity.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BucketParam {
    /// UTC hours.
    Hour,
    /// UTC days.
    Day,
}

/// `GET /v1/devices/{id}/aggregates` range.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AggregatesQuery {
    /// `hour` or `day`.
    bucket: BucketParam,
    /// The event type of the series.
    event_type: String,
    /// From this time (RFC 3339; default 24 hours or 30 days before `to`).
    from: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339; default now), at most 400 days after `from`.
    to: Option<DateTime<Utc>>,
}

/// One bucket of a series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AggregateView {
    /// Bucket start (UTC hour or day).
    bucket_start: DateTime<Utc>,
    /// Events in the bucket.
    count: i64,
    /// Events with a value.
    value_count: i64,
    /// Sum of values; `null` when it passed the largest double (±1.8e308;
    /// a value beyond ±1e300 makes it so).
    sum: Option<f64>,
    /// Mean value; `null` without values or when the sum is `null`.
    avg: Option<f64>,
    /// Smallest value.
    min: Option<f64>,
    /// Largest value.
    max: Option<f64>,
    /// Sample standard deviation; `null` under two values or when it
    /// passed the largest double.
    stddev: Option<f64>,
}

impl From<Aggregate> for AggregateView {
    fn from(a: Aggregate) -> Self {
        Self {
            bucket_start: time(a.bucket_start_ms),
            count: a.count,
            value_count: a.value_count,
            sum: finite(a.sum),
            avg: a.avg.and_then(finite),
            min: a.min,
            max: a.max,
            stddev: a.stddev.and_then(finite),
        }
    }
}

/// JSON has no infinity: a figure that overflowed is `null`.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// A series of rollups, oldest bucket first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AggregatesView {
    /// The device.
    device_id: DeviceId,
    /// The event type.
    event_type: String,
    /// The granularity.
    bucket: BucketParam,
    /// The buckets that hold events.
    items: Vec<AggregateView>,
}

#[utoipa::path(get, path = "/v1/devices/{id}/aggregates", tag = "devices", params(("id" = uuid::Uuid, Path, description = "the device"), AggregatesQuery), responses((status = 200, body = AggregatesView), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn aggregates(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<DeviceId>,
    ApiQuery(q): ApiQuery<AggregatesQuery>,
) -> Answer<AggregatesView> {
    read_device(&s, &c.principal, id).await?;
    let kind =
        EventType::parse(&q.event_type).map_err(|e| ApiError::invalid("event_type", e.reason))?;
    let (bucket, default_span) = match q.bucket {
        BucketParam::Hour => (Bucket::Hour, chrono::Duration::hours(24)),
        BucketParam::Day => (Bucket::Day, chrono::Duration::days(30)),
    };
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - default_span);
    if from >= to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    if to - from > chrono::Duration::days(MAX_AGGREGATE_DAYS) {
        return Err(ApiError::invalid("to", "at most 400 days after from"));
    }
    let series = s
        .devices
        .history
        .aggregates(
            &c.principal.scope(),
            id,
            &kind,
            bucket,
            from.timestamp_millis(),
            to.timestamp_millis(),
        )
        .await?;
    Ok(Json(AggregatesView {
        device_id: id,
        event_type: kind.to_string(),
        bucket: q.bucket,
        items: series.into_iter().map(AggregateView::from).collect(),
    }))
}

// ----- commands -------------------------------------------------------

/// `POST /v1/devices/{id}/commands` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    /// `unlock`, `set_state`, `reboot`, or a device-specific type (1–50
    /// characters of `[a-z0-9_.-]`). Door-code types (`program_code`,
    /// `remove_code`, any type with a word `code`, `pin`, ...) are refused
    /// with 403 `reserved_command`: codes come from bookings.
    command_type: String,
    /// Parameters for the device (a JSON object, at most 16 KiB).
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Map<String, Value>,
    /// Idempotency of the call; a fresh one when absent.
    request_id: Option<Uuid>,
    /// How long to wait for the device, 1–25000 ms (default 10000).
    timeout_ms: Option<u64>,
}

/// The device's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandOutcome {
    /// The command's id.
    request_id: Uuid,
    /// Whether the device carried it out.
    success: bool,
    /// The device's message.
    message: String,
}

fn checked_command(body: NewCommand) -> Result<(Command, Duration), ApiError> {
    let kind = EventType::parse(&body.command_type)
        .map_err(|e| ApiError::invalid("command_type", e.reason))?;
    if is_door_code_command(kind.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reserved_command",
            "door-code commands are sent by the booking module only: confirm a booking to issue a code",
        ));
    }
    let size = serde_json::to_vec(&body.params).map_or(usize::MAX, |v| v.len());
    if size > MAX_PARAMS_BYTES {
        return Err(ApiError::invalid("params", "at most 16 KiB"));
    }
    let timeout = match body.timeout_ms {
        None => DEFAULT_COMMAND_TIMEOUT,
        Some(ms @ 1..=MAX_COMMAND_TIMEOUT_MS) => Duration::from_millis(ms),
        Some(_) => return Err(ApiError::invalid("timeout_ms", "must be 1-25000")),
    };
    let command = Command {
        request_id: body.request_id.unwrap_or_else(Uuid::now_v7),
        command_type: kind.to_string(),
        params: body.params,
    };
    Ok((command, timeout))
}

/// Commands to a device of a suspended organization or partner company
/// are refused (409 `tenant_suspended`), whoever sends them.
async fn refuse_if_suspended(s: &AppState, device: DeviceId) -> Result<(), ApiError> {
    let Some(resource) = s.tenancy.locate(Target::Device(device)).await? else {
        return Ok(());
    };
    match s.tenancy.suspension(&resource).await? {
        Some(suspended) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "tenant_suspended",
            format!("{suspended}: its devices take no commands until it is reinstated"),
        )),
        None => Ok(()),
    }
}

#[utoipa::path(post, path = "/v1/devices/{id}/commands", tag = "devices", params(("id" = uuid::Uuid, Path, description = "the device")), request_body = NewCommand, responses((status = 200, body = CommandOutcome), (status = "4XX", body = Problem, content_type = "application/problem+json", description = "403 `reserved_command` for a door-code type; 409 `device_offline` when the device is not connected, `tenant_suspended` when its organization or partner company is suspended"), (status = 503, body = Problem, content_type = "application/problem+json"), (status = 504, body = Problem, content_type = "application/problem+json", description = "`device_timeout`: no answer in time")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn command(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(body): ApiJson<NewCommand>,
) -> Answer<CommandOutcome> {
    read_device(&s, &c.principal, id).await?;
    may(&s, &c.principal, id, "command_device").await?;
    let (command, timeout) = checked_command(body)?;
    refuse_if_suspended(&s, id).await?;
    let request_id = command.request_id;
    tracing::info!(device.id = %id, command.id = %request_id, command.kind = %command.command_type, "command sent");
    let result = s.devices.commands.send(id, command, timeout).await?;
    Ok(Json(CommandOutcome {
        request_id,
        success: result.success,
        message: result.message,
    }))
}

// ----- device WebSocket -----------------------------------------------

/// The device WebSocket: a device speaks the device protocol over it.
#[utoipa::path(get, path = "/v1/devices/ws", tag = "devices", responses((status = 101, description = "switched to the device protocol of docs/PROTOCOL.md (one text message is one frame): the first message must be `hello` with the device secret"), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn device_socket(
    State(s): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "websocket_required",
                rejection.body_text(),
            )
            .into_response();
        }
    };
    let remote = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map_or_else(|| "websocket".to_owned(), |v| v.trim().to_owned());
    let devices = s.devices.clone();
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| websocket::serve(devices, socket, remote))
}
