//! How upstream reports change our tasks. Polls and upstream callbacks both come through
//! here, so that every task moves forward only and ends exactly once, and every change
//! queues its client notification (in the store, in the same transaction).

use crate::domain::ids::now_ms;
use crate::domain::{CustomId, TaskStatus};
use crate::proto::TaskJson;
use crate::state::AppState;
use crate::store::{StoreResult, Task, TaskUpdate};
use serde_json::Map;

/// Upstream task properties that clients may see; the rest (Discord instance, channel and
/// message ids, nonces) stay inside the gateway.
const VISIBLE_PROPERTIES: &[&str] = &["finalPrompt", "finalZhPrompt"];

/// The change an upstream report makes to a task, or `None` when it changes nothing or
/// would move the task backwards (a stale report).
pub fn update_from_report(task: &Task, report: &TaskJson) -> Option<TaskUpdate> {
    if task.status.is_final() {
        return None;
    }
    let status = report
        .status
        .as_deref()
        .and_then(|s| s.parse::<TaskStatus>().ok())
        .unwrap_or(task.status);
    let progress = match status {
        TaskStatus::Success => "100%".to_string(),
        _ => report
            .progress
            .clone()
            .filter(|p| percent(p).is_some())
            .unwrap_or_else(|| task.progress.clone()),
    };
    let moves_back = rank(status) < rank(task.status)
        || (rank(status) == rank(task.status)
            && percent(&progress).unwrap_or(0) < percent(&task.progress).unwrap_or(0));
    if moves_back {
        return None;
    }
    let text = |v: &Option<String>, current: &str| {
        v.clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| current.to_string())
    };
    let mut properties = Map::new();
    for key in VISIBLE_PROPERTIES {
        if let Some(value) = report.properties.get(*key) {
            properties.insert(key.to_string(), value.clone());
        }
    }
    let fail_reason = (status == TaskStatus::Failure).then(|| {
        report
            .fail_reason
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "the upstream reported a failure without a reason".to_string())
    });
    let update = TaskUpdate {
        status,
        progress,
        prompt: text(&report.prompt, &task.prompt),
        prompt_en: text(&report.prompt_en, &task.prompt_en),
        description: text(&report.description, &task.description),
        start_time: report.start_time.unwrap_or(task.start_time),
        finish_time: report.finish_time.unwrap_or(task.finish_time),
        upstream_image_url: report
            .image_url
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| task.upstream_image_url.clone()),
        video_url: report.video_url.clone().or_else(|| task.video_url.clone()),
        video_urls: report
            .video_urls
            .clone()
            .unwrap_or_else(|| task.video_urls.0.clone()),
        fail_reason,
        // Only buttons the gateway can act on are shown.
        buttons: report
            .buttons
            .iter()
            .filter(|b| CustomId::parse(&b.custom_id).is_ok())
            .cloned()
            .collect(),
        properties,
    };
    (!same_as_task(task, &update)).then_some(update)
}

fn same_as_task(task: &Task, u: &TaskUpdate) -> bool {
    task.status == u.status
        && task.progress == u.progress
        && task.prompt == u.prompt
        && task.prompt_en == u.prompt_en
        && task.description == u.description
        && task.start_time == u.start_time
        && task.finish_time == u.finish_time
        && task.upstream_image_url == u.upstream_image_url
        && task.video_url == u.video_url
        && task.video_urls.0 == u.video_urls
        && task.fail_reason == u.fail_reason
        && task.buttons.0 == u.buttons
        && task.properties.0 == u.properties
}

/// Status order: a report may keep or advance it, never lower it.
fn rank(status: TaskStatus) -> u8 {
    match status {
        TaskStatus::NotStart | TaskStatus::Modal => 0,
        TaskStatus::Submitted => 1,
        TaskStatus::InProgress => 2,
        TaskStatus::Success | TaskStatus::Failure | TaskStatus::Cancel => 3,
    }
}

/// `"62%"` → 62.
fn percent(progress: &str) -> Option<u32> {
    progress
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse().ok())
        .filter(|n| *n <= 100)
}

/// Applies an upstream report to a task. Returns the task as it now is when it changed.
pub async fn apply_report(
    state: &AppState,
    task: &Task,
    report: &TaskJson,
) -> StoreResult<Option<Task>> {
    let Some(update) = update_from_report(task, report) else {
        return Ok(None);
    };
    let updated = state.store.update_task(task, &update, now_ms()).await?;
    if let Some(task) = &updated {
        tracing::debug!(task = %task.mj_id, status = %task.status, progress = %task.progress, "task updated");
        state.task_changed();
    }
    Ok(updated)
}

/// Ends an unfinished task in `FAILURE`. Returns the task when this call ended it.
pub async fn fail_task(state: &AppState, mj_id: &str, reason: &str) -> StoreResult<Option<Task>> {
    let failed = state.store.fail_task(mj_id, reason, now_ms()).await?;
    if failed.is_some() {
        tracing::info!(task = %mj_id, %reason, "task failed");
        state.task_changed();
    }
    Ok(failed)
}

/// Ends a task that finished inside the request (an upload) in `SUCCESS`.
pub async fn complete_task(state: &AppState, task: &Task) -> StoreResult<Option<Task>> {
    let now = now_ms();
    let update = TaskUpdate {
        status: TaskStatus::Success,
        progress: "100%".to_string(),
        prompt: task.prompt.clone(),
        prompt_en: task.prompt_en.clone(),
        description: task.description.clone(),
        start_time: now,
        finish_time: now,
        upstream_image_url: None,
        video_url: None,
        video_urls: Vec::new(),
        fail_reason: None,
        buttons: Vec::new(),
        properties: Map::new(),
    };
    state.store.update_task(task, &update, now).await
}
