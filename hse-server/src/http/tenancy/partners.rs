//! Partner companies over HTTP: root creates them, partners read and update their own.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hse_core::model::{NewPartnerCompany, PartnerCompanyPatch};
use hse_core::{Listing, PartnerCompany, PartnerCompanyId};

use super::{Answer, Created, created};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

#[utoipa::path(post, path = "/v1/partner-companies", tag = "tenancy", request_body = NewPartnerCompany, responses((status = 201, body = PartnerCompany), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn create_partner(
    State(s): State<AppState>,
    c: Caller,
    ApiJson(body): ApiJson<NewPartnerCompany>,
) -> Created<PartnerCompany> {
    created(s.tenancy.create_partner_company(&c.principal, body).await?)
}

#[utoipa::path(get, path = "/v1/partner-companies", tag = "tenancy", params(ListQuery), responses((status = 200, body = Listing<PartnerCompany>), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn list_partners(
    State(s): State<AppState>,
    c: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Answer<Listing<PartnerCompany>> {
    Ok(Json(
        s.tenancy.partner_companies(&c.principal, q.page()?).await?,
    ))
}

#[utoipa::path(get, path = "/v1/partner-companies/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 200, body = PartnerCompany), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn get_partner(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<PartnerCompanyId>,
) -> Answer<PartnerCompany> {
    Ok(Json(s.tenancy.partner_company(&c.principal, id).await?))
}

#[utoipa::path(patch, path = "/v1/partner-companies/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), request_body = PartnerCompanyPatch, responses((status = 200, body = PartnerCompany), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn update_partner(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<PartnerCompanyId>,
    ApiJson(patch): ApiJson<PartnerCompanyPatch>,
) -> Answer<PartnerCompany> {
    Ok(Json(
        s.tenancy
            .update_partner_company(&c.principal, id, patch)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/partner-companies/{id}", tag = "tenancy", params(("id" = uuid::Uuid, Path, description = "the id")), responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")), security(("bearer" = []), ("api_key" = [])))]
pub(crate) async fn delete_partner(
    State(s): State<AppState>,
    c: Caller,
    ApiPath(id): ApiPath<PartnerCompanyId>,
) -> Result<StatusCode, ApiError> {
    s.tenancy.delete_partner_company(&c.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
