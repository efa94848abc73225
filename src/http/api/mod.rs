//! The management API (`/api/...`, SPEC 3): task histories for users and admins, and the
//! admin's users, keys, channels, prices and top-ups, and a task's client notifications. Its envelope is New-API's:
//! `{"success", "message", "data"}`.

mod admin;
mod auth;
mod channels;
mod deliveries;
mod history;

use crate::state::AppState;
use crate::store::StoreError;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Serialize;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mj/self", get(history::own_tasks))
        .route("/mj/", get(history::all_tasks))
        .route("/mj", get(history::all_tasks))
        .route("/user/", get(admin::list_users).post(admin::create_user))
        .route("/user/{id}/topup", post(admin::top_up))
        .route("/user/{id}/enable", post(admin::enable_user))
        .route("/user/{id}/disable", post(admin::disable_user))
        .route("/key/", get(admin::list_keys).post(admin::create_key))
        .route("/key/{id}/enable", post(admin::enable_key))
        .route("/key/{id}/disable", post(admin::disable_key))
        .route(
            "/channel/",
            get(channels::list_channels).post(channels::create_channel),
        )
        .route(
            "/channel/{id}",
            patch(channels::update_channel).put(channels::update_channel),
        )
        .route("/channel/{id}/enable", post(channels::enable_channel))
        .route("/channel/{id}/disable", post(channels::disable_channel))
        .route("/price/", get(admin::list_prices).put(admin::set_price))
        .route("/task/{mj_id}/deliveries", get(deliveries::task_deliveries))
        .fallback(|| async { ManageError::NotFound("no such route".to_string()) })
}

/// `{"success": true, "message": "", "data": ...}`.
pub struct Data<T>(pub T);

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        Json(json!({ "success": true, "message": "", "data": self.0 })).into_response()
    }
}

/// A failure of the management API, as `{"success": false, "message": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ManageError::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ManageError::NotFound(format!("{what} not found")),
            other => ManageError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ManageError {
    fn into_response(self) -> Response {
        let status = match &self {
            ManageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ManageError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ManageError::Forbidden(_) => StatusCode::FORBIDDEN,
            ManageError::NotFound(_) => StatusCode::NOT_FOUND,
            ManageError::Conflict(_) => StatusCode::CONFLICT,
            ManageError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = json!({ "success": false, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}
