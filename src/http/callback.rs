//! `POST /mj/callback/{channel}?secret=...`: an upstream reporting a task change. A report
//! with the channel's secret is applied exactly as a poll's would be; anything else changes
//! nothing. Replays are harmless: a report that is not ahead of the task is ignored.

use super::error::{ApiError, Envelope, code};
use super::extract::ApiJson;
use crate::proto::TaskJson;
use crate::relay::callback::verify_secret;
use crate::relay::lifecycle::apply_report;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub struct CallbackQuery {
    secret: Option<String>,
}

pub async fn upstream_callback(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Query(query): Query<CallbackQuery>,
    ApiJson(report): ApiJson<TaskJson>,
) -> Result<Envelope, ApiError> {
    let refused = || ApiError::Unauthorized("invalid callback secret".to_string());
    let channel_id: i64 = channel.parse().map_err(|_| refused())?;
    let secret = query.secret.unwrap_or_default();
    if !verify_secret(&state, channel_id, &secret) {
        tracing::warn!(
            channel = channel_id,
            "upstream callback with a wrong secret"
        );
        return Err(refused());
    }
    // Callbacks can outrun the submit's answer: a task not recorded yet is left to the poll.
    let task = state
        .store
        .task_by_upstream(channel_id, &report.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no task {} on this channel", report.id)))?;
    let applied = apply_report(&state, &task, &report).await?;
    let description = if applied.is_some() {
        "Updated"
    } else {
        "Unchanged"
    };
    Ok(Envelope::new(code::SUCCESS, description, Value::Null))
}
