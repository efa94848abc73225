//! What the task API answers, as the relay produces it: the envelope, the gateway's codes,
//! the failures (the HTTP layer maps each to its status), and who is calling.

use crate::store::{ApiKey, StoreError, User};
use serde::Serialize;
use serde_json::{Map, Value};

/// The authenticated caller of a `/mj` route: an enabled, unexpired key of an enabled user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: ApiKey,
    pub user: User,
}

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
