//! Establishments over HTTP, and assigning users to them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hse_core::model::{EstablishmentPatch, NewEstablishment};
use hse_core::{Establishment, EstablishmentId, Listing, RoleId, UserEstablishment, UserId};
use serde::Deserialize;

use super::{Answer, Created, created};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/establishments", tag = "tenancy", request_body = NewEstablishment, responses((status = 201, body = Establishment), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_est(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewEstablishment>,
) -> Created<Establishment> {
    created(s.tenancy.create_establishment(&c.principal, body).await?)
}

#[utoipa::path(get, path = "/v1/establishments", tag = "tenancy", params(ListQuery), responses((status = 200, body = Listing<Establishment>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_ests(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Answer<Listing<Establishment>> {
    Ok(Json(
        s.tenancy.establishments(&c.principal, q.page()?).await?,
    ))
}

#[utoipa::path(get, path = "/v1/establishments/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Establishment), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_est(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<EstablishmentId>,
) -> Answer<Establishment> {
    Ok(Json(s.tenancy.establishment(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/establishments/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = EstablishmentPatch, responses((status = 200, body = Establishment), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_est(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<EstablishmentId>,
    ApiJson(patch): ApiJson<EstablishmentPatch>,
) -> Answer<Establishment> {
    Ok(Json(
        s.tenancy
            .update_establishment(&c.principal, id, patch)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/establishments/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_est(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<EstablishmentId>,
) -> Result<StatusCode, ApiError> {
    s.tenancy.delete_establishment(&c.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/establishments/{id}/users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    user_id: UserId,
    #[serde(default)]
    role_id: Option<RoleId>,
}

#[utoipa::path(post, path = "/v1/establishments/{id}/users", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = AssignBody, responses((status = 201, body = UserEstablishment), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn assign_user(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<EstablishmentId>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Created<UserEstablishment> {
    created(
        s.tenancy
            .assign_establishment(&c.principal, body.user_id, id, body.role_id)
            .await?,
    )
}
