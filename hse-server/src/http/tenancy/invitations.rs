//! Invitations over HTTP: issuing, accepting and declining them.

use axum::Json;
use axum::extract::State;
use hse_core::invitation::{Acceptance, Invitation, NewInvitation};
use hse_core::{Secret, User};
use serde::Serialize;

use super::{Answer, Created, created};
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiPath, Caller};
use crate::state::AppState;

/// A new invitation with its token, shown only in this answer, for the
/// inviter to deliver.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedInvitation {
    pub(super) invitation: Invitation,
    /// The invitation token; shown only here.
    #[schema(value_type = String)]
    pub(super) token: Secret,
}

#[utoipa::path(post, path = "/v1/invitations", tag = "onboarding", request_body = NewInvitation, responses((status = 201, body = IssuedInvitation), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn invite(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewInvitation>,
) -> Created<IssuedInvitation> {
    let (invitation, token) = s.tenancy.invite(&c.principal, body).await?;
    created(IssuedInvitation { invitation, token })
}

#[utoipa::path(post, path = "/v1/invitations/{token}/accept", tag = "onboarding", params(("token" = String, Path, description = "the invitation token")), request_body = Acceptance, responses((status = 201, body = User), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn accept(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<Acceptance>,
) -> Created<User> {
    let token = Secret::from_presented(&token);
    created(
        s.tenancy
            .accept_invitation(&token, body, s.auth.passwords())
            .await?,
    )
}

#[utoipa::path(post, path = "/v1/invitations/{token}/decline", tag = "onboarding", params(("token" = String, Path, description = "the invitation token")), responses((status = 200, body = Invitation), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn decline(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Answer<Invitation> {
    Ok(Json(
        s.tenancy
            .decline_invitation(&Secret::from_presented(&token))
            .await?,
    ))
}
