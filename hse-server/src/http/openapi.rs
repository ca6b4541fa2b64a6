//! `GET /openapi.json`: the OpenAPI 3.1 description of the API, generated
//! from the handlers' annotations and the types' schemas, so it cannot
//! drift from the code.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{api_keys, auth, bookings, dead_letters, devices, tenancy};

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "HSE API", description = "Tenancy, auth, bookings and devices of the HSE platform."),
    paths(
        auth::login, auth::second_factor, auth::refresh, auth::logout, auth::me,
        api_keys::create, api_keys::list, api_keys::revoke,
        tenancy::create_partner, tenancy::list_partners, tenancy::get_partner, tenancy::update_partner,
        tenancy::delete_partner,
        tenancy::create_org, tenancy::list_orgs, tenancy::get_org, tenancy::update_org, tenancy::delete_org,
        tenancy::create_est, tenancy::list_ests, tenancy::get_est, tenancy::update_est, tenancy::delete_est,
        tenancy::assign_user,
        tenancy::create_area, tenancy::list_areas, tenancy::get_area, tenancy::update_area, tenancy::delete_area,
        tenancy::create_device, tenancy::list_devices, tenancy::get_device, tenancy::update_device,
        tenancy::delete_device,
        tenancy::create_user, tenancy::list_users, tenancy::get_user, tenancy::update_user,
        tenancy::deactivate_user,
        tenancy::create_role, tenancy::list_roles, tenancy::get_role, tenancy::role_grants, tenancy::delete_role,
        tenancy::list_actions, tenancy::invite, tenancy::accept, tenancy::decline,
        bookings::create_guest, bookings::list_guests, bookings::get_guest, bookings::update_guest,
        bookings::add_companion, bookings::companions, bookings::availability,
        bookings::create_booking, bookings::list_bookings, bookings::get_booking, bookings::update_booking,
        bookings::delete_booking, bookings::confirm, bookings::cancel, bookings::door_codes,
        bookings::notifications,
        devices::status, devices::events, devices::aggregates, devices::command,
        dead_letters::dead_letters, dead_letters::replay_dead_letters, devices::device_socket,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// Declares the two ways to authenticate.
#[derive(Debug)]
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
