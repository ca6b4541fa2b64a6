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
        tenancy::partners::create_partner, tenancy::partners::list_partners,
        tenancy::partners::get_partner, tenancy::partners::update_partner,
        tenancy::partners::delete_partner,
        tenancy::organizations::create_org, tenancy::organizations::list_orgs,
        tenancy::organizations::get_org, tenancy::organizations::update_org,
        tenancy::organizations::delete_org,
        tenancy::establishments::create_est, tenancy::establishments::list_ests,
        tenancy::establishments::get_est, tenancy::establishments::update_est,
        tenancy::establishments::delete_est, tenancy::establishments::assign_user,
        tenancy::areas::create_area, tenancy::areas::list_areas, tenancy::areas::get_area,
        tenancy::areas::update_area, tenancy::areas::delete_area,
        tenancy::devices::create_device, tenancy::devices::list_devices,
        tenancy::devices::get_device, tenancy::devices::update_device,
        tenancy::devices::delete_device,
        tenancy::users::create_user, tenancy::users::list_users, tenancy::users::get_user,
        tenancy::users::update_user, tenancy::users::deactivate_user,
        tenancy::roles::create_role, tenancy::roles::list_roles, tenancy::roles::get_role,
        tenancy::roles::role_grants, tenancy::roles::delete_role, tenancy::roles::list_actions,
        tenancy::invitations::invite, tenancy::invitations::accept, tenancy::invitations::decline,
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
