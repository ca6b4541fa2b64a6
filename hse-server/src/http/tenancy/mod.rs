//! The tenant tree over HTTP: partner companies, organizations,
//! establishments, areas, devices, users, roles, the action catalogue and
//! invitations. Handlers are thin: parse, call [`hse_core::Tenancy`], answer.
//!
//! One file per area: `partners`, `organizations`, `establishments`,
//! `areas`, `devices`, `users`, `roles`, `invitations`; the routes are
//! listed here.

pub mod areas;
pub mod devices;
pub mod establishments;
pub mod invitations;
pub mod organizations;
pub mod partners;
pub mod roles;
pub mod users;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::http::error::ApiError;
use crate::state::AppState;

/// A handler's answer: 200 with `T`, or a problem.
pub(crate) type Answer<T> = Result<Json<T>, ApiError>;
/// A create handler's answer: 201 with `T`, or a problem.
pub(crate) type Created<T> = Result<(StatusCode, Json<T>), ApiError>;

/// 201 with `value`.
pub(crate) fn created<T>(value: T) -> Created<T> {
    Ok((StatusCode::CREATED, Json(value)))
}

/// The tenancy routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/partner-companies",
            post(partners::create_partner).get(partners::list_partners),
        )
        .route(
            "/v1/partner-companies/{id}",
            get(partners::get_partner)
                .patch(partners::update_partner)
                .delete(partners::delete_partner),
        )
        .route(
            "/v1/organizations",
            post(organizations::create_org).get(organizations::list_orgs),
        )
        .route(
            "/v1/organizations/{id}",
            get(organizations::get_org)
                .patch(organizations::update_org)
                .delete(organizations::delete_org),
        )
        .route(
            "/v1/establishments",
            post(establishments::create_est).get(establishments::list_ests),
        )
        .route(
            "/v1/establishments/{id}",
            get(establishments::get_est)
                .patch(establishments::update_est)
                .delete(establishments::delete_est),
        )
        .route(
            "/v1/establishments/{id}/users",
            post(establishments::assign_user),
        )
        .route("/v1/areas", post(areas::create_area).get(areas::list_areas))
        .route(
            "/v1/areas/{id}",
            get(areas::get_area)
                .patch(areas::update_area)
                .delete(areas::delete_area),
        )
        .route(
            "/v1/devices",
            post(devices::create_device).get(devices::list_devices),
        )
        .route(
            "/v1/devices/{id}",
            get(devices::get_device)
                .patch(devices::update_device)
                .delete(devices::delete_device),
        )
        .route("/v1/users", post(users::create_user).get(users::list_users))
        .route(
            "/v1/users/{id}",
            get(users::get_user)
                .patch(users::update_user)
                .delete(users::deactivate_user),
        )
        .route("/v1/roles", post(roles::create_role).get(roles::list_roles))
        .route(
            "/v1/roles/{id}",
            get(roles::get_role).delete(roles::delete_role),
        )
        .route("/v1/roles/{id}/grants", get(roles::role_grants))
        .route("/v1/actions", get(roles::list_actions))
        .route("/v1/invitations", post(invitations::invite))
        .route("/v1/invitations/{token}/accept", post(invitations::accept))
        .route(
            "/v1/invitations/{token}/decline",
            post(invitations::decline),
        )
}
