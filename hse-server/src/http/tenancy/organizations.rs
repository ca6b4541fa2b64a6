//! Organizations over HTTP: created under a partner company (or by root directly).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hse_core::model::{NewOrganization, OrganizationPatch};
use hse_core::{Listing, Organization, OrganizationId};

use super::{Answer, Created, created};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/organizations", tag = "tenancy", request_body = NewOrganization, responses((status = 201, body = Organization), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_org(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewOrganization>,
) -> Created<Organization> {
    created(s.tenancy.create_organization(&c.principal, body).await?)
}

#[utoipa::path(get, path = "/v1/organizations", tag = "tenancy", params(ListQuery), responses((status = 200, body = Listing<Organization>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_orgs(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Answer<Listing<Organization>> {
    Ok(Json(
        s.tenancy.organizations(&c.principal, q.page()?).await?,
    ))
}

#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Organization), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_org(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<OrganizationId>,
) -> Answer<Organization> {
    Ok(Json(s.tenancy.organization(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/organizations/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = OrganizationPatch, responses((status = 200, body = Organization), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_org(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<OrganizationId>,
    ApiJson(patch): ApiJson<OrganizationPatch>,
) -> Answer<Organization> {
    Ok(Json(
        s.tenancy
            .update_organization(&c.principal, id, patch)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/organizations/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_org(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<OrganizationId>,
) -> Result<StatusCode, ApiError> {
    s.tenancy.delete_organization(&c.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
