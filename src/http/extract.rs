//! Extractors: JSON bodies in the gateway's envelope, the calling API key, the speed mode of
//! the route, and the public base URL.

use super::error::ApiError;
use crate::domain::Mode;
use crate::domain::ids::now_ms;
use crate::domain::secrets::{hash_secret, looks_like_api_key};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body whose rejections use the `/mj` envelope (400, code 21).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::bad_request(describe_rejection(&rejection))),
        }
    }
}

fn describe_rejection(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "request body must be JSON (Content-Type: application/json)".to_string()
        }
        JsonRejection::JsonSyntaxError(e) => format!("malformed JSON body: {}", e.body_text()),
        JsonRejection::JsonDataError(e) => format!("invalid request body: {}", e.body_text()),
        JsonRejection::BytesRejection(_) => "request body too large or unreadable".to_string(),
        other => other.body_text(),
    }
}

pub use crate::relay::error::Caller;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(parts)
            .ok_or_else(|| ApiError::Unauthorized("missing API key".to_string()))?;
        let unknown = || ApiError::Unauthorized("invalid API key".to_string());
        if !looks_like_api_key(key) {
            return Err(unknown());
        }
        let (key, user) = state
            .store
            .key_by_hash(&hash_secret(key))
            .await?
            .ok_or_else(unknown)?;
        if !key.enabled || !user.enabled {
            return Err(ApiError::Unauthorized("API key is disabled".to_string()));
        }
        let now = now_ms();
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::Unauthorized("API key has expired".to_string()));
        }
        let limit = state.config.rate_limit_per_minute;
        if limit > 0 {
            // Counted in the database, so that the limit holds across gateway processes.
            let window = now - now % 60_000;
            if state.store.count_request(key.id, window).await? > i64::from(limit) {
                return Err(ApiError::TooManyRequests);
            }
        }
        Ok(Caller { key, user })
    }
}

/// `Authorization: Bearer <key>`, `Authorization: <key>` or `mj-api-secret: <key>`.
fn presented_key(parts: &Parts) -> Option<&str> {
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(auth) = header(AUTHORIZATION.as_str()) {
        let key = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or(auth);
        return Some(key.trim());
    }
    header("mj-api-secret")
}

/// The speed mode chosen by the route prefix (`/mj-fast/mj/...`), set by the router.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteMode(pub Option<Mode>);

impl<S: Send + Sync> FromRequestParts<S> for RouteMode {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RouteMode>()
            .copied()
            .unwrap_or_default())
    }
}

/// The absolute base of URLs handed to clients: the configured public URL, else the
/// request's own scheme and host.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(url) = &state.config.public_url {
            return Ok(BaseUrl(url.trim_end_matches('/').to_string()));
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let scheme = header("x-forwarded-proto").unwrap_or("http");
        let host = header("x-forwarded-host")
            .or_else(|| header(HOST.as_str()))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        Ok(BaseUrl(match host {
            Some(host) => format!("{scheme}://{host}"),
            None => format!("{scheme}://{}", state.config.listen),
        }))
    }
}
