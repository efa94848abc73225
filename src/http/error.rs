//! The `/mj` error envelope: every failure maps to one HTTP status and gateway code here
//! (SPEC 1.3), and internal details go to the log, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub use crate::relay::error::{ApiError, Envelope, code};

/// The HTTP status and gateway code of each failure (SPEC 1.3), in one place.
fn status_and_code(error: &ApiError) -> (StatusCode, i32) {
    match error {
        ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, code::INVALID),
        ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, code::INVALID),
        ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, code::INVALID),
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, code::INVALID),
        ApiError::QuotaInsufficient(_) => (StatusCode::FORBIDDEN, code::QUOTA),
        ApiError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, code::FAILURE),
        ApiError::NoChannel(_) => (StatusCode::SERVICE_UNAVAILABLE, code::NO_CHANNEL),
        ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, code::FAILURE),
        ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, code::FAILURE),
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(&self);
        let (description, properties) = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ("internal error".to_string(), Map::new())
            }
            ApiError::BadRequest {
                description,
                properties,
            } => (description, properties),
            other => (other.to_string(), Map::new()),
        };
        let envelope = Envelope {
            code,
            description,
            result: Value::Null,
            properties,
        };
        (status, Json(envelope)).into_response()
    }
}
