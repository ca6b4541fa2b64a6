//! The one place where errors become HTTP answers: RFC 9457
//! `application/problem+json`, with the statuses `docs/errors.md` lists.
//!
//! Client mistakes get 4xx with a stable `code` and a safe `detail`;
//! infrastructure failures get 503 and their text goes to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hse_auth::AuthError;
use hse_booking::{BookingError, BookingId};
use hse_core::{CoreError, Denied};
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    field: Option<&'static str>,
    retry_after_s: Option<u64>,
    conflicting_booking_id: Option<BookingId>,
}

/// An RFC 9457 problem document, as every error is answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:hse:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, safe to show.
    pub detail: String,
    /// A stable machine-readable code (`not_found`, `booking_conflict`, ...).
    pub code: String,
    /// The offending input field, for 400s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The booking in the way, for `booking_conflict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicting_booking_id: Option<BookingId>,
}

impl ApiError {
    /// An error with a status, a stable code and a detail safe to show.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after_s: None,
            conflicting_booking_id: None,
        }
    }

    /// 400 naming the field.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
        }
    }

    /// 401.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// 503 for a failed dependency; `cause` is logged, never shown.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "dependency failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency is unavailable; retry shortly",
        )
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { entity } => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{entity} not found"),
            ),
            CoreError::Invalid { field, reason } => Self::invalid(field, reason),
            CoreError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already_exists", e.to_string())
            }
            CoreError::InUse { .. } => Self::new(StatusCode::CONFLICT, "in_use", e.to_string()),
            CoreError::Denied(Denied::OutOfScope) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
            }
            CoreError::Denied(denied) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", denied.to_string())
            }
            CoreError::InvitationClosed { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invitation_closed",
                e.to_string(),
            ),
            CoreError::Password(reason) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", reason)
            }
            other => Self::unavailable(&other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        match e {
            AuthError::Invalid { field, reason } => Self::invalid(field, reason),
            AuthError::RateLimited { retry_after } => Self {
                retry_after_s: Some(retry_after.as_secs().max(1)),
                ..Self::new(status, "rate_limited", e.to_string())
            },
            AuthError::Storage(_) | AuthError::Internal(_) | AuthError::Config(_) => {
                Self::unavailable(&e)
            }
            AuthError::Busy => Self::new(status, "busy", e.to_string()),
            AuthError::NotFound { .. } => Self::new(status, "not_found", e.to_string()),
            AuthError::Forbidden { .. } => Self::new(status, "forbidden", e.to_string()),
            AuthError::WeakPassword { .. } => Self::new(status, "weak_password", e.to_string()),
            _ => Self::new(status, "unauthenticated", e.to_string()),
        }
    }
}

impl From<BookingError> for ApiError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Overlap { with } => Self {
                conflicting_booking_id: Some(with),
                ..Self::new(StatusCode::CONFLICT, "booking_conflict", e.to_string())
            },
            BookingError::IllegalTransition(t) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "illegal_transition",
                t.to_string(),
            ),
            BookingError::NotFound { entity } => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{entity} not found"),
            ),
            BookingError::Invalid { field, reason } => Self::invalid(field, reason),
            BookingError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already_exists", e.to_string())
            }
            BookingError::CodeCapReached { .. } => Self::new(
                StatusCode::CONFLICT,
                "code_cap_reached",
                format!("{e}; the booking is confirmed, its code for that lock is not issued"),
            ),
            BookingError::Denied(denied) => CoreError::Denied(denied).into(),
            other => Self::unavailable(&other),
        }
    }
}

impl From<hse_devices::commands::CommandError> for ApiError {
    fn from(e: hse_devices::commands::CommandError) -> Self {
        use hse_devices::commands::CommandError;
        match e {
            CommandError::DeviceOffline => Self::new(
                StatusCode::CONFLICT,
                "device_offline",
                "the device is not connected; retry when it is online",
            ),
            CommandError::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "device_timeout",
                "the device did not answer within the timeout",
            ),
            CommandError::Duplicate => Self::new(
                StatusCode::CONFLICT,
                "duplicate_request",
                "a command with this request_id is already in flight",
            ),
            other => Self::unavailable(&other),
        }
    }
}

impl From<hse_devices::history::ReadError> for ApiError {
    fn from(e: hse_devices::history::ReadError) -> Self {
        match e {
            hse_devices::history::ReadError::Invalid(invalid) => {
                Self::invalid(invalid.field, invalid.reason)
            }
            other => Self::unavailable(&other),
        }
    }
}

impl From<hse_devices::QueueError> for ApiError {
    fn from(e: hse_devices::QueueError) -> Self {
        match e {
            hse_devices::QueueError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found", "dead letter not found")
            }
            other => Self::unavailable(&other),
        }
    }
}

impl From<hse_devices::SinkError> for ApiError {
    fn from(e: hse_devices::SinkError) -> Self {
        match e {
            hse_devices::SinkError::Content(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "event_refused",
                "storage still refuses this event; fix the cause, then replay",
            ),
            other => Self::unavailable(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("urn:hse:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            field: self.field.map(str::to_owned),
            conflicting_booking_id: self.conflicting_booking_id,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_scope_is_indistinguishable_from_absent() {
        let hidden = ApiError::from(CoreError::Denied(Denied::OutOfScope));
        let absent = ApiError::from(CoreError::not_found("device"));
        assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
        assert_eq!(absent.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn storage_failures_are_503_and_never_shown() {
        let e = ApiError::from(CoreError::Storage(
            "password=hunter2 connection refused".into(),
        ));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.detail.contains("hunter2"));
    }

    #[test]
    fn booking_errors_get_their_statuses() {
        let with = BookingId::new();
        let overlap = ApiError::from(BookingError::Overlap { with });
        assert_eq!(overlap.status(), StatusCode::CONFLICT);
        assert_eq!(overlap.conflicting_booking_id, Some(with));
        let hidden = ApiError::from(BookingError::Denied(Denied::OutOfScope));
        assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
        let storage = ApiError::from(BookingError::Storage("password=hunter2".into()));
        assert_eq!(storage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!storage.detail.contains("hunter2"));
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let e = ApiError::from(AuthError::RateLimited {
            retry_after: std::time::Duration::from_millis(1500),
        });
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
