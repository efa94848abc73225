//! `upload-discord-images`: images handed to an upstream, which answers with the URLs it will
//! serve them under (Discord's CDN, for a real upstream). It is charged like a task and
//! recorded as an `UPLOAD` task, so that the charge has a task to refund against.

use super::error::{ApiError, Caller};
use super::lifecycle::{complete_task, fail_task};
use super::submit::{Submission, insert_new_task, price_for};
use crate::domain::{BotType, TaskAction};
use crate::proto::code;
use crate::state::AppState;
use serde_json::json;

/// Uploads through the first enabled channel that takes the images.
pub async fn upload_images(
    state: &AppState,
    caller: &Caller,
    images: &[String],
) -> Result<Vec<String>, ApiError> {
    let channels = state.store.list_channels().await?;
    let channels: Vec<_> = channels.into_iter().filter(|c| c.enabled).take(3).collect();
    if channels.is_empty() {
        return Err(ApiError::NoChannel("no channel is available".to_string()));
    }
    let body = json!({ "base64Array": images });
    let record = Submission {
        action: TaskAction::Upload,
        path: "/submit/upload-discord-images",
        body: body.clone(),
        prompt: String::new(),
        description: format!("/upload {} images", images.len()),
        state: None,
        bot_type: BotType::default(),
        mode: None,
        notify_hook: None,
        account_filter: Default::default(),
        parent: None,
        custom_id: None,
        expects_modal: false,
    };
    let price = price_for(state, TaskAction::Upload, None).await?;
    let task = insert_new_task(state, caller, &record, price).await?;

    for channel in &channels {
        match state.upstream.submit(channel, record.path, &body).await {
            Ok(answer) if answer.code == code::SUCCESS => {
                let urls: Vec<String> = answer
                    .result
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|u| u.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if urls.is_empty() {
                    fail_task(state, &task.mj_id, "the upstream returned no URLs").await?;
                    return Err(ApiError::Upstream(
                        "the upstream returned no URLs".to_string(),
                    ));
                }
                complete_task(state, &task).await?;
                return Ok(urls);
            }
            Ok(answer) if answer.code == code::VALIDATION_ERROR => {
                fail_task(
                    state,
                    &task.mj_id,
                    &format!("refused by the upstream: {}", answer.description),
                )
                .await?;
                return Err(ApiError::bad_request(answer.description));
            }
            Ok(answer) => {
                tracing::warn!(channel = %channel.name, code = answer.code, description = %answer.description, "upload refused");
            }
            Err(e) if e.safe_to_retry_elsewhere() => {
                tracing::warn!(channel = %channel.name, error = %e, "upload failed");
            }
            Err(e) => {
                tracing::warn!(channel = %channel.name, error = %e, "upload failed");
                fail_task(
                    state,
                    &task.mj_id,
                    "the upstream did not confirm the upload",
                )
                .await?;
                return Err(ApiError::Upstream(
                    "the upstream did not confirm the upload".to_string(),
                ));
            }
        }
    }
    fail_task(state, &task.mj_id, "no channel took the upload").await?;
    Err(ApiError::NoChannel(
        "no channel can take the upload now".to_string(),
    ))
}
