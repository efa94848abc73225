//! The simulator's HTTP surface: midjourney-proxy-plus routes under `/mj` and the three mode
//! prefixes, behind the `mj-api-secret` check and the request log; the files it serves; and
//! `/sim/faults` for tests.

use super::buttons;
use super::refusal::RouteMode;
use super::state::SimState;
use super::submit;
use super::{Faults, RequestRecord};
use crate::domain::Mode;
use crate::domain::ids::now_ms;
use crate::proto::{ListByConditionRequest, SubmitResult, code};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::Value;
use std::sync::Arc;

const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub(super) fn router(state: Arc<SimState>) -> Router {
    let api = Router::new()
        .nest("/mj", task_api(None))
        .nest("/mj-fast/mj", task_api(Some(Mode::Fast)))
        .nest("/mj-relax/mj", task_api(Some(Mode::Relax)))
        .nest("/mj-turbo/mj", task_api(Some(Mode::Turbo)))
        .layer(middleware::from_fn_with_state(state.clone(), check_secret))
        .layer(middleware::from_fn_with_state(state.clone(), record));
    Router::new()
        .merge(api)
        .route("/attachments/{channel}/{folder}/{file}", get(file))
        .route("/sim/faults", get(get_faults).post(set_faults))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

fn task_api(mode: Option<Mode>) -> Router<Arc<SimState>> {
    Router::new()
        .route("/submit/imagine", post(submit::imagine))
        .route("/submit/blend", post(submit::blend))
        .route("/submit/describe", post(submit::describe))
        .route("/submit/shorten", post(submit::shorten))
        .route("/submit/action", post(buttons::action))
        .route("/submit/modal", post(buttons::modal))
        .route("/submit/change", post(buttons::change))
        .route("/submit/simple-change", post(buttons::simple_change))
        .route("/submit/upload-discord-images", post(submit::upload))
        .route("/insight-face/swap", post(submit::swap_face))
        .route("/task/{id}/fetch", get(fetch))
        .route("/task/{id}/image-seed", get(image_seed))
        .route("/task/list-by-condition", post(list_by_condition))
        .route("/task/list", get(list))
        .layer(Extension(RouteMode(mode)))
}

fn secret_ok(state: &SimState, headers: &HeaderMap) -> bool {
    match &state.config.secret {
        None => true,
        Some(secret) => headers
            .get("mj-api-secret")
            .is_some_and(|given| given.as_bytes() == secret.as_bytes()),
    }
}

/// A wrong or missing secret: 401 with an empty body, like midjourney-proxy's filter.
async fn check_secret(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    if secret_ok(&state, request.headers()) {
        next.run(request).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

/// Logs every task-API request (with its JSON body and its timing) for tests to inspect.
async fn record(State(state): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    let at_ms = now_ms();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = parts.extensions.get::<OriginalUri>().map_or_else(
        || parts.uri.path().to_string(),
        |uri| uri.path().to_string(),
    );
    let record = RequestRecord {
        method: parts.method.to_string(),
        path,
        api_secret: header("mj-api-secret"),
        authorization: header("authorization"),
        user_agent: header("user-agent"),
        body: serde_json::from_slice(&bytes).ok(),
        at_ms,
        done_ms: 0,
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    state.record(RequestRecord {
        done_ms: now_ms(),
        ..record
    });
    response
}

/// An unknown task is an empty 200, as midjourney-proxy answers a `null`.
async fn fetch(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match state.task_views(std::slice::from_ref(&id)).pop() {
        Some(task) => Json(task).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

async fn list_by_condition(
    State(state): State<Arc<SimState>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<ListByConditionRequest>(&body) {
        Ok(req) => Json(state.task_views(&req.ids)).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn list(State(state): State<Arc<SimState>>) -> Response {
    Json(state.latest_views(100)).into_response()
}

async fn image_seed(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
) -> Json<SubmitResult> {
    let answer = match state.with_task(&id, |t| (t.status, t.seed)) {
        None => SubmitResult::new(code::NOT_FOUND, "任务不存在", Value::Null),
        Some((crate::domain::TaskStatus::Success, seed)) => {
            SubmitResult::new(code::SUCCESS, "成功", seed.to_string())
        }
        Some(_) => SubmitResult::new(code::FAILURE, "任务未完成", Value::Null),
    };
    Json(answer)
}

/// The simulator's "CDN": task images, previews and uploads, without authentication.
async fn file(
    State(state): State<Arc<SimState>>,
    Path((_, _, name)): Path<(String, String, String)>,
) -> Response {
    match state.file(&name) {
        Some((content_type, bytes)) => {
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn get_faults(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if !secret_ok(&state, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(state.faults()).into_response()
}

async fn set_faults(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !secret_ok(&state, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            state.set_faults(faults.clone());
            Json(faults).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
