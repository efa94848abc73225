//! The `/mj` error envelope: every failure maps to one HTTP status and gateway code here
//! (SPEC 1.3), and internal details go to the log, never to the client.

use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// Gateway codes of the `/mj` API.
pub mod code {
    pub const SUCCESS: i32 = 1;
    pub const MODAL: i32 = 21;
    pub const IN_QUEUE: i32 = 22;
    pub const FAILURE: i32 = 23;
    pub const NO_CHANNEL: i32 = 24;
    pub const QUOTA: i32 = 25;
    /// Validation, auth and lookup failures share code 21; the HTTP status tells them apart.
    pub const INVALID: i32 = 21;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad parameters, bad JSON, unknown customId, invalid image, or an upstream refusal.
    #[error("{description}")]
    BadRequest {
        description: String,
        properties: Map<String, Value>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    QuotaInsufficient(String),
    #[error("too many requests")]
    TooManyRequests,
    /// No channel can take the task now.
    #[error("{0}")]
    NoChannel(String),
    /// The upstream failed in a way the gateway could not recover from.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(description: impl Into<String>) -> Self {
        ApiError::BadRequest {
            description: description.into(),
            properties: Map::new(),
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    fn status_and_code(&self) -> (StatusCode, i32) {
        match self {
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
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QuotaInsufficient(why) => ApiError::QuotaInsufficient(why.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `{"code", "description", "result", "properties"}`.
#[derive(Debug, Serialize)]
pub struct Envelope {
    pub code: i32,
    pub description: String,
    pub result: Value,
    pub properties: Map<String, Value>,
}

impl Envelope {
    pub fn new(code: i32, description: impl Into<String>, result: impl Into<Value>) -> Self {
        Self {
            code,
            description: description.into(),
            result: result.into(),
            properties: Map::new(),
        }
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
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
