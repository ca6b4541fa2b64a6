//! The tenant tree over HTTP: partner companies, organizations,
//! establishments, areas, devices, users, roles, the action catalogue and
//! invitations. Handlers are thin: parse, call [`hse_core::Tenancy`], answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hse_core::invitation::{Acceptance, Invitation, NewInvitation};
use hse_core::model::{
    AreaPatch, DevicePatch, EstablishmentPatch, NewArea, NewDevice, NewEstablishment,
    NewOrganization, NewPartnerCompany, NewUser, OrganizationPatch, PartnerCompanyPatch, UserPatch,
};
use hse_core::role::{NewRole, PermissionGrant};
use hse_core::tenancy::{UserCreation, creates_accounts_at_once, password_refused};
use hse_core::{
    Action, Area, AreaId, Device, DeviceId, Establishment, EstablishmentId, Listing, Organization,
    OrganizationId, PartnerCompany, PartnerCompanyId, Role, RoleId, Secret, User,
    UserEstablishment, UserId,
};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, ListQuery};
use crate::state::AppState;

type Answer<T> = Result<Json<T>, ApiError>;
type Created<T> = Result<(StatusCode, Json<T>), ApiError>;

fn created<T>(value: T) -> Created<T> {
    Ok((StatusCode::CREATED, Json(value)))
}

/// The tenancy routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/partner-companies",
            post(create_partner).get(list_partners),
        )
        .route(
            "/v1/partner-companies/{id}",
            get(get_partner)
                .patch(update_partner)
                .delete(delete_partner),
        )
        .route("/v1/organizations", post(create_org).get(list_orgs))
        .route(
            "/v1/organizations/{id}",
            get(get_org).patch(update_org).delete(delete_org),
        )
        .route("/v1/establishments", post(create_est).get(list_ests))
        .route(
            "/v1/establishments/{id}",
            get(get_est).patch(update_est).delete(delete_est),
        )
        .route("/v1/establishments/{id}/users", post(assign_user))
        .route("/v1/areas", post(create_area).get(list_areas))
        .route(
            "/v1/areas/{id}",
            get(get_area).patch(update_area).delete(delete_area),
        )
        .route("/v1/devices", post(create_device).get(list_devices))
        .route(
            "/v1/devices/{id}",
            get(get_device).patch(update_device).delete(delete_device),
        )
        .route("/v1/users", post(create_user).get(list_users))
        .route(
            "/v1/users/{id}",
            get(get_user).patch(update_user).delete(deactivate_user),
        )
        .route("/v1/roles", post(create_role).get(list_roles))
        .route("/v1/roles/{id}", get(get_role).delete(delete_role))
        .route("/v1/roles/{id}/grants", get(role_grants))
        .route("/v1/actions", get(list_actions))
        .route("/v1/invitations", post(invite))
        .route("/v1/invitations/{token}/accept", post(accept))
        .route("/v1/invitations/{token}/decline", post(decline))
}

// ----- partner companies ----------------------------------------------

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

// ----- organizations --------------------------------------------------

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

// ----- establishments -------------------------------------------------

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

// ----- areas ----------------------------------------------------------

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

// ----- devices --------------------------------------------------------

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

// ----- users ----------------------------------------------------------

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

// ----- roles and actions ----------------------------------------------

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

// ----- invitations ----------------------------------------------------

/// A new invitation with its token, shown only in this answer, for the
/// inviter to deliver.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedInvitation {
    invitation: Invitation,
    /// The invitation token; shown only here.
    #[schema(value_type = String)]
    token: Secret,
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
