//! Reading tasks: fetch, list, list-by-condition, image-seed.

use super::error::{ApiError, Envelope, code};
use super::extract::{ApiJson, BaseUrl, Caller};
use crate::proto::{ListByConditionRequest, code as upstream_code};
use crate::relay::TaskView;
use crate::relay::submit::parent_channel;
use crate::state::AppState;
use crate::store::Task;
use axum::Json;
use axum::extract::{Path, State};

/// At most this many ids per list-by-condition call.
const MAX_IDS: usize = 500;
/// `GET /mj/task/list` returns this many of the caller's latest tasks.
const LIST_LIMIT: i64 = 100;

/// The caller's task `id`, or 404 (also for other users' tasks: ids are not confirmed).
pub async fn caller_task(state: &AppState, caller: &Caller, id: &str) -> Result<Task, ApiError> {
    let not_found = || ApiError::NotFound(format!("task {id} not found"));
    if !crate::domain::ids::is_task_id(id) {
        return Err(not_found());
    }
    match state.store.task(id).await? {
        Some(task) if task.user_id == caller.user.id => Ok(task),
        _ => Err(not_found()),
    }
}

pub async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    let task = caller_task(&state, &caller, &id).await?;
    Ok(Json(TaskView::new(&task, &base, &state.signer)))
}

pub async fn list_by_condition(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    ApiJson(req): ApiJson<ListByConditionRequest>,
) -> Result<Json<Vec<TaskView>>, ApiError> {
    if req.ids.len() > MAX_IDS {
        return Err(ApiError::bad_request(format!(
            "ids: at most {MAX_IDS} per call"
        )));
    }
    let ids: Vec<String> = req
        .ids
        .into_iter()
        .filter(|id| crate::domain::ids::is_task_id(id))
        .collect();
    let mut tasks = state.store.user_tasks_by_ids(caller.user.id, &ids).await?;
    // Answer in the order asked.
    tasks.sort_by_key(|t| ids.iter().position(|id| *id == t.mj_id));
    Ok(Json(views(&tasks, &base, &state)))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
) -> Result<Json<Vec<TaskView>>, ApiError> {
    let tasks = state
        .store
        .recent_user_tasks(caller.user.id, LIST_LIMIT)
        .await?;
    Ok(Json(views(&tasks, &base, &state)))
}

pub async fn image_seed(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope, ApiError> {
    let task = caller_task(&state, &caller, &id).await?;
    let (channel, upstream_id) = parent_channel(&state, &task).await?;
    let answer = state
        .upstream
        .image_seed(&channel, &upstream_id)
        .await
        .map_err(|e| {
            tracing::warn!(channel = %channel.name, task = %task.mj_id, error = %e, "image-seed failed");
            ApiError::Upstream("the upstream did not return the seed".to_string())
        })?;
    match (answer.code, answer.result.as_str()) {
        (upstream_code::SUCCESS, Some(seed)) if !seed.is_empty() => {
            Ok(Envelope::new(code::SUCCESS, "Success", seed.to_string()))
        }
        (upstream_code::SUCCESS, _) => match &answer.result {
            serde_json::Value::Number(n) => {
                Ok(Envelope::new(code::SUCCESS, "Success", n.to_string()))
            }
            _ => Err(ApiError::Upstream(
                "the upstream returned no seed".to_string(),
            )),
        },
        _ => Err(ApiError::bad_request(format!(
            "no seed for task {id}: {}",
            answer.description
        ))),
    }
}

fn views(tasks: &[Task], base: &str, state: &AppState) -> Vec<TaskView> {
    tasks
        .iter()
        .map(|t| TaskView::new(t, base, &state.signer))
        .collect()
}
