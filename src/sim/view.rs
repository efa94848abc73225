//! The simulator's tasks as midjourney-proxy serializes them, and the calls to their
//! `notifyHook`.

use super::task::SimTask;
use crate::domain::TaskStatus;
use crate::proto::TaskJson;
use serde_json::{Map, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Sends the task's current state to its hook, if it has one.
pub(super) fn emit(task: &SimTask, instance: &str) {
    if let Some(notifier) = &task.notifier {
        let _ = notifier.send(view(task, instance));
    }
}

/// The task as midjourney-proxy serializes it.
pub(super) fn view(task: &SimTask, instance: &str) -> TaskJson {
    let mut properties = Map::new();
    properties.insert("finalPrompt".into(), json!(task.prompt_en));
    properties.insert("discordInstanceId".into(), json!(instance));
    properties.insert("discordChannelId".into(), json!(instance));
    properties.insert("botType".into(), json!(task.bot_type.as_str()));
    properties.insert(
        "nonce".into(),
        json!(format!("{}", task.submit_time * 1000 + 7)),
    );
    if let Some(hook) = &task.notify_hook {
        properties.insert("notifyHook".into(), json!(hook));
    }
    if task.status == TaskStatus::Success {
        properties.insert("messageHash".into(), json!(task.hash));
        properties.insert(
            "messageId".into(),
            json!(format!("{}", task.seed as u64 * 1_000_003)),
        );
    }
    TaskJson {
        id: task.id.clone(),
        action: Some(task.action.as_str().to_string()),
        custom_id: Some(String::new()),
        bot_type: Some(task.bot_type.as_str().to_string()),
        prompt: Some(task.prompt.clone()),
        prompt_en: Some(task.prompt_en.clone()),
        description: Some(task.description.clone()),
        state: task.state.clone(),
        submit_time: Some(task.submit_time),
        start_time: task.start_time,
        finish_time: task.finish_time,
        image_url: task.image_url.clone(),
        video_url: None,
        video_urls: None,
        status: Some(task.status.as_str().to_string()),
        progress: Some(format!("{}%", task.progress)),
        fail_reason: task.fail_reason.clone(),
        buttons: task.buttons.clone(),
        properties,
    }
}

/// One sender per hooked task, whose calls go out one after another, so that its states
/// arrive in order.
pub(super) fn notifier(
    http: &reqwest::Client,
    hook: String,
    stop: &CancellationToken,
) -> mpsc::UnboundedSender<TaskJson> {
    let (tx, mut rx) = mpsc::unbounded_channel::<TaskJson>();
    let http = http.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        while let Some(task) = rx.recv().await {
            let post = http.post(&hook).json(&task).send();
            tokio::select! {
                _ = stop.cancelled() => return,
                result = post => if let Err(e) = result {
                    tracing::debug!(%hook, error = %e, "simulated notifyHook call failed");
                },
            }
        }
    });
    tx
}
