//! Users over HTTP: creating (at once by root, by invitation below it),
//! reading, updating and deactivating them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hse_core::model::{NewUser, UserPatch};
use hse_core::tenancy::{UserCreation, creates_accounts_at_once, password_refused};
use hse_core::{Listing, OrganizationId, PartnerCompanyId, RoleId, User, UserId};
use serde::Deserialize;

use super::Answer;
use super::invitations::IssuedInvitation;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

/// `POST /v1/users` body: the user, and an initial password (only from a
/// platform-wide caller; everyone else's new users are invited and choose
/// their own).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateUserBody {
    #[serde(flatten)]
    user: NewUserFields,
    /// The initial password (root only; refused from anyone else).
    #[serde(default)]
    password: Option<String>,
}

/// The fields of [`NewUser`], repeated so the password can sit beside them.
#[derive(Deserialize, utoipa::ToSchema)]
struct NewUserFields {
    email: hse_core::value::Email,
    first_name: String,
    #[serde(default)]
    last_name: String,
    role_id: RoleId,
    #[serde(default)]
    partner_company_id: Option<PartnerCompanyId>,
    #[serde(default)]
    organization_id: Option<OrganizationId>,
}

impl std::fmt::Debug for CreateUserBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreateUserBody")
    }
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserBody, responses((status = 201, body = User, description = "The account, created at once: the caller's scope is the whole platform (root)."), (status = 202, body = IssuedInvitation, description = "An invitation to the same role and place, for any caller scoped below the platform, whatever the email: the invitee chooses a password at acceptance."), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_user(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<Response, ApiError> {
    let u = body.user;
    let new = NewUser {
        email: u.email,
        first_name: u.first_name,
        last_name: u.last_name,
        role_id: u.role_id,
        partner_company_id: u.partner_company_id,
        organization_id: u.organization_id,
    };
    let hash = match body.password {
        // Refused before hashing: a caller who invites sets no password.
        Some(_) if !creates_accounts_at_once(&c.principal) => return Err(password_refused().into()),
        Some(password) => Some(s.auth.passwords().hash(&password).await?),
        None => None,
    };
    let answer = s
        .tenancy
        .create_user(&c.principal, new, hash.as_deref())
        .await?;
    Ok(match answer {
        UserCreation::Created(user) => (StatusCode::CREATED, Json(user)).into_response(),
        UserCreation::Invited { invitation, token } => (
            StatusCode::ACCEPTED,
            Json(IssuedInvitation { invitation, token }),
        )
            .into_response(),
    })
}

#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListQuery), responses((status = 200, body = Listing<User>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_users(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Answer<Listing<User>> {
    Ok(Json(s.tenancy.users(&c.principal, q.page()?).await?))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_user(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> Answer<User> {
    Ok(Json(s.tenancy.user(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = UserPatch, responses((status = 200, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_user(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Answer<User> {
    let deactivating = patch.is_active == Some(false);
    let user = s.tenancy.update_user(&c.principal, id, patch).await?;
    if deactivating {
        s.auth.revoke_sessions(id).await?;
    }
    Ok(Json(user))
}

#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn deactivate_user(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<UserId>,
) -> Result<StatusCode, ApiError> {
    let patch = UserPatch {
        is_active: Some(false),
        ..UserPatch::default()
    };
    s.tenancy.update_user(&c.principal, id, patch).await?;
    s.auth.revoke_sessions(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
