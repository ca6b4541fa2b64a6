//! Areas (rooms, floors, wings) over HTTP.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hse_core::model::{AreaPatch, NewArea};
use hse_core::{Area, AreaId, EstablishmentId, Listing};
use serde::Deserialize;

use super::{Answer, Created, created};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

/// `GET /v1/areas` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AreaQuery {
    /// Page size, 1–500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<uuid::Uuid>,
    /// Only the areas of this establishment.
    establishment_id: Option<EstablishmentId>,
}

#[utoipa::path(post, path = "/v1/areas", tag = "tenancy", request_body = NewArea, responses((status = 201, body = Area), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_area(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewArea>,
) -> Created<Area> {
    created(s.tenancy.create_area(&c.principal, body).await?)
}

#[utoipa::path(get, path = "/v1/areas", tag = "tenancy", params(AreaQuery), responses((status = 200, body = Listing<Area>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_areas(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<AreaQuery>,
) -> Answer<Listing<Area>> {
    Ok(Json(
        s.tenancy
            .areas(
                &c.principal,
                q.establishment_id,
                ListQuery {
                    limit: q.limit,
                    cursor: q.cursor,
                }
                .page()?,
            )
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/areas/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Area), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_area(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<AreaId>,
) -> Answer<Area> {
    Ok(Json(s.tenancy.area(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/areas/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = AreaPatch, responses((status = 200, body = Area), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_area(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<AreaId>,
    ApiJson(patch): ApiJson<AreaPatch>,
) -> Answer<Area> {
    Ok(Json(s.tenancy.update_area(&c.principal, id, patch).await?))
}

#[utoipa::path(delete, path = "/v1/areas/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_area(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<AreaId>,
) -> Result<StatusCode, ApiError> {
    s.tenancy.delete_area(&c.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
