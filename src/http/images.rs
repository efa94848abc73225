//! `GET /mj/image/{id}?sig=...`: the task's image, streamed from its upstream. The signature
//! makes the URL work without a key while task ids cannot be enumerated.

use super::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ImageQuery {
    sig: Option<String>,
}

pub async fn image(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ImageQuery>,
) -> Result<Response, ApiError> {
    let signature = query.sig.unwrap_or_default();
    if !state.signer.verify(&id, &signature) {
        return Err(ApiError::Forbidden("invalid image signature".to_string()));
    }
    let task = state
        .store
        .task(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))?;
    let url = task
        .upstream_image_url
        .ok_or_else(|| ApiError::NotFound(format!("task {id} has no image yet")))?;
    let image = state
        .upstream
        .fetch_image(&url, state.config.max_image_bytes)
        .await
        .map_err(|e| {
            tracing::warn!(task = %id, error = %e, "image fetch failed");
            ApiError::Upstream("the image could not be fetched from the upstream".to_string())
        })?;
    let mut response = Response::new(Body::from_stream(image.body));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&image.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(len) = image.content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    // While a task runs the image is a preview that changes; do not let caches keep it.
    let cache = if task.status.is_final() {
        "public, max-age=300"
    } else {
        "no-store"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}
