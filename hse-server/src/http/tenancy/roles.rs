//! Roles and the action catalogue over HTTP.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hse_core::role::{NewRole, PermissionGrant};
use hse_core::{Action, Listing, Role, RoleId};

use super::{Answer, Created, created};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/roles", tag = "users", request_body = NewRole, responses((status = 201, body = Role), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_role(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewRole>,
) -> Created<Role> {
    created(s.tenancy.create_role(&c.principal, body).await?)
}

#[utoipa::path(get, path = "/v1/roles", tag = "users", params(ListQuery), responses((status = 200, body = Listing<Role>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_roles(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Answer<Listing<Role>> {
    Ok(Json(s.tenancy.roles(&c.principal, q.page()?).await?))
}

#[utoipa::path(get, path = "/v1/roles/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Role), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_role(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<RoleId>,
) -> Answer<Role> {
    Ok(Json(s.tenancy.role(&c.principal, id).await?))
}

#[utoipa::path(get, path = "/v1/roles/{id}/grants", tag = "users", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = Vec<PermissionGrant>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn role_grants(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<RoleId>,
) -> Answer<Vec<PermissionGrant>> {
    Ok(Json(s.tenancy.permission_grants(&c.principal, id).await?))
}

#[utoipa::path(delete, path = "/v1/roles/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_role(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<RoleId>,
) -> Result<StatusCode, ApiError> {
    s.tenancy.delete_role(&c.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/actions", tag = "users", responses((status = 200, body = Vec<Action>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_actions(State(s): State<AppState>, _c: Caller) -> Json<&'static [Action]> {
    Json(s.tenancy.actions())
}
