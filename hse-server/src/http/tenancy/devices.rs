//! Registering and managing devices over HTTP (their events, state and
//! commands are in [`crate::http::devices`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hse_core::model::{DevicePatch, NewDevice};
use hse_core::{AreaId, Device, DeviceId, Listing, Secret};
use serde::{Deserialize, Serialize};

use super::{Answer, Created, created};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

/// `GET /v1/devices` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<uuid::Uuid>,
    /// Only the devices of this area.
    area_id: Option<AreaId>,
}

/// A registered device with its secret, shown only in this answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegisteredDevice {
    #[serde(flatten)]
    device: Device,
    /// The device's secret for `hello`; shown only here.
    #[schema(value_type = String)]
    secret: Secret,
}

#[utoipa::path(post, path = "/v1/devices", tag = "devices", request_body = NewDevice, responses((status = 201, body = RegisteredDevice), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_device(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewDevice>,
) -> Created<RegisteredDevice> {
    let (device, secret) = s.tenancy.create_device(&c.principal, body).await?;
    created(RegisteredDevice { device, secret })
}

#[utoipa::path(get, path = "/v1/devices", tag = "devices", params(DeviceQuery), responses((status = 200, body = Listing<Device>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_devices(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> Answer<Listing<Device>> {
    Ok(Json(
        s.tenancy
            .devices(
                &c.principal,
                q.area_id,
                ListQuery {
                    limit: q.limit,
                    cursor: q.cursor,
                }
                .page()?,
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/devices/{id}", tag = "devices", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Device), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_device(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<DeviceId>,
) -> Answer<Device> {
    Ok(Json(s.tenancy.device(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/devices/{id}", tag = "devices", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = DevicePatch, responses((status = 200, body = Device), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_device(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(patch): ApiJson<DevicePatch>,
) -> Answer<Device> {
    Ok(Json(
        s.tenancy.update_device(&c.principal, id, patch).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/devices/{id}", tag = "devices", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_device(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<StatusCode, ApiError> {
    s.tenancy.delete_device(&c.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
