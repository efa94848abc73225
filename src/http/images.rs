//! `GET /mj/image/{id}?sig=...` and `GET /mj/video/{id}?sig=...`: a task's files. The
//! signature makes the URLs work without a key while task ids cannot be enumerated.
//!
//! Once the copier has stored a file it is served from storage: immutable, with its ETag,
//! conditional requests and ranges, streamed. Until then (a running task's preview, or a
//! finished one whose copy is still on its way) the upstream's current file is passed
//! through, uncached; once the copier has given up, the answer is a 502. `?part=1..4` (a grid quadrant) and `?size=N` (a thumbnail) are cut from
//! the stored image once and stored beside it.

use super::error::ApiError;
use super::ranges::{self, Answer};
use crate::state::AppState;
use crate::storage::derive::Variant;
use crate::storage::sniff_content_type;
use crate::store::{FileKind, FileState, Task, TaskFile};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Deserialize;

/// Stored files never change: caches may keep them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[derive(Deserialize)]
pub struct FileQuery {
    sig: Option<String>,
    part: Option<String>,
    size: Option<String>,
}

pub async fn image(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let task = signed_task(&state, &id, query.sig.as_deref()).await?;
    let variant = Variant::from_query(query.part.as_deref(), query.size.as_deref())
        .map_err(ApiError::bad_request)?;
    serve(&state, &task, FileKind::Image, variant, &headers).await
}

pub async fn video(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<FileQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let task = signed_task(&state, &id, query.sig.as_deref()).await?;
    serve(&state, &task, FileKind::Video, None, &headers).await
}

async fn signed_task(
    state: &AppState,
    id: &str,
    signature: Option<&str>,
) -> Result<Task, ApiError> {
    if !state.signer.verify(id, signature.unwrap_or_default()) {
        return Err(ApiError::Forbidden("invalid signature".to_string()));
    }
    state
        .store
        .task(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("task {id} not found")))
}

async fn serve(
    state: &AppState,
    task: &Task,
    kind: FileKind,
    variant: Option<Variant>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    match state.store.task_file(&task.mj_id, kind).await? {
        Some(file) if file.state == FileState::Done => {
            return serve_stored(state, &file, variant, headers).await;
        }
        // Refused (too large, not an image, a private address) or gone upstream: passing
        // the link through would not do better.
        Some(file) if file.state == FileState::Failed => {
            return Err(ApiError::Upstream(format!(
                "the {} could not be copied from the upstream",
                kind.as_str()
            )));
        }
        _ => {}
    }
    let url = match kind {
        FileKind::Image => task.upstream_image_url.as_deref(),
        FileKind::Video => task.video_url.as_deref(),
    }
    .ok_or_else(|| {
        ApiError::NotFound(format!("task {} has no {} yet", task.mj_id, kind.as_str()))
    })?;
    serve_upstream(state, task, url, variant).await
}

async fn serve_stored(
    state: &AppState,
    file: &TaskFile,
    variant: Option<Variant>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (Some(key), Some(etag), Some(content_type), Some(size)) = (
        file.storage_key.as_deref(),
        file.etag.as_deref(),
        file.content_type.as_deref(),
        file.size,
    ) else {
        return Err(ApiError::internal(format!(
            "stored file {} is incomplete",
            file.id
        )));
    };
    let (key, etag, content_type, size) = match variant {
        None => (key.to_string(), etag.to_string(), content_type, size as u64),
        Some(variant) => {
            let size = derived(state, key, variant).await?;
            (variant.key(key), variant.etag(etag), "image/png", size)
        }
    };
    let answer = ranges::answer(headers, &etag, size);
    let range = match &answer {
        Answer::NotModified => return Ok(not_modified(&etag)),
        Answer::Unsatisfiable => return Ok(unsatisfiable(size)),
        Answer::Whole => None,
        Answer::Part(range) => Some(range.clone()),
    };
    let blob = state
        .blobs
        .get(&key, range)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("{key} is missing from storage")))?;
    let mut response = Response::new(Body::from_stream(blob.body));
    let partial = matches!(answer, Answer::Part(_));
    if partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let content_range = format!(
            "bytes {}-{}/{}",
            blob.range.start,
            blob.range.end.saturating_sub(1),
            blob.size
        );
        response
            .headers_mut()
            .insert(header::CONTENT_RANGE, header_value(&content_range));
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header_value(content_type));
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(blob.range.end - blob.range.start),
    );
    headers.insert(header::ETAG, header_value(&etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    nosniff(headers);
    Ok(response)
}

/// Makes sure the variant of the stored file at `key` exists; returns its size.
async fn derived(state: &AppState, key: &str, variant: Variant) -> Result<u64, ApiError> {
    let derived_key = variant.key(key);
    if let Some(size) = state
        .blobs
        .size(&derived_key)
        .await
        .map_err(ApiError::internal)?
    {
        return Ok(size);
    }
    let source = state
        .blobs
        .read(key, state.config.max_image_bytes)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("{key} is missing from storage")))?;
    let png = state
        .renderer
        .render(variant, source)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot cut this image: {e}")))?;
    let size = png.len() as u64;
    state
        .blobs
        .put(&derived_key, Bytes::from(png))
        .await
        .map_err(ApiError::internal)?;
    Ok(size)
}

/// The upstream's current file, passed through (or cut) without caching.
async fn serve_upstream(
    state: &AppState,
    task: &Task,
    url: &str,
    variant: Option<Variant>,
) -> Result<Response, ApiError> {
    let allow_private = match task.channel_id {
        Some(id) => state.store.channel(id).await?.is_some_and(|c| c.is_local),
        None => false,
    };
    let upstream = state
        .upstream
        .fetch_image(url, state.config.max_image_bytes, allow_private)
        .await
        .map_err(|e| {
            tracing::warn!(task = %task.mj_id, error = %e, "upstream file fetch failed");
            ApiError::Upstream("the file could not be fetched from the upstream".to_string())
        })?;
    let unreadable = |e: std::io::Error| {
        tracing::warn!(task = %task.mj_id, error = %e, "upstream file read failed");
        ApiError::Upstream("the file could not be read from the upstream".to_string())
    };
    let mut response = if let Some(variant) = variant {
        let chunks: Vec<Bytes> = upstream.body.try_collect().await.map_err(unreadable)?;
        let png = state
            .renderer
            .render(variant, chunks.concat().into())
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot cut this image: {e}")))?;
        let mut response = Response::new(Body::from(png));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        response
    } else {
        // The type comes from the first bytes, not from what the upstream claims.
        let mut body = upstream.body;
        let first = body
            .next()
            .await
            .transpose()
            .map_err(unreadable)?
            .unwrap_or_default();
        let content_type = sniff_content_type(&first)
            .map(str::to_string)
            .unwrap_or(upstream.content_type);
        let rest = stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(body);
        let mut response = Response::new(Body::from_stream(rest));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, header_value(&content_type));
        if let Some(len) = upstream.content_length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        response
    };
    // A preview changes as the task runs; a file not yet copied may still move.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    nosniff(response.headers_mut());
    Ok(response)
}

/// Browsers must take a served file for the type it is served as: an upstream's odd file
/// is never run as a page of the gateway's site.
fn nosniff(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn not_modified(etag: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(header::ETAG, header_value(etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    response
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    response.headers_mut().insert(
        header::CONTENT_RANGE,
        header_value(&format!("bytes */{size}")),
    );
    response
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
