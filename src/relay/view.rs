//! The task object clients see (SPEC 1.5): our ids, our image and video URLs, no upstream
//! internals.

use crate::domain::secrets::Signer;
use crate::domain::{BotType, Button, TaskAction, TaskStatus};
use crate::store::Task;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub id: String,
    pub action: TaskAction,
    pub status: TaskStatus,
    pub progress: String,
    pub prompt: String,
    pub prompt_en: String,
    pub description: String,
    pub state: Option<String>,
    pub bot_type: BotType,
    pub custom_id: Option<String>,
    pub submit_time: i64,
    pub start_time: i64,
    pub finish_time: i64,
    pub image_url: Option<String>,
    pub video_url: Option<String>,
    pub video_urls: Vec<String>,
    pub fail_reason: Option<String>,
    pub buttons: Vec<Button>,
    pub properties: Map<String, Value>,
}

impl TaskView {
    /// `base_url` is the gateway's public base; image URLs are signed with `signer`.
    pub fn new(task: &Task, base_url: &str, signer: &Signer) -> Self {
        let mut properties = task.properties.0.clone();
        properties
            .entry("finalPrompt")
            .or_insert_with(|| Value::String(task.prompt.clone()));
        Self {
            id: task.mj_id.clone(),
            action: task.action,
            status: task.status,
            progress: task.progress.clone(),
            prompt: task.prompt.clone(),
            prompt_en: task.prompt_en.clone(),
            description: task.description.clone(),
            state: task.state.clone(),
            bot_type: task.bot_type,
            custom_id: task.custom_id.clone(),
            submit_time: task.submit_time,
            start_time: task.start_time,
            finish_time: task.finish_time,
            image_url: task
                .upstream_image_url
                .as_ref()
                .map(|_| image_url(base_url, &task.mj_id, signer)),
            video_url: task
                .video_url
                .as_ref()
                .map(|_| video_url(base_url, &task.mj_id, signer)),
            video_urls: task.video_urls.0.clone(),
            fail_reason: task.fail_reason.clone(),
            buttons: task.buttons.0.clone(),
            properties,
        }
    }
}

/// `<base>/mj/image/<task id>?sig=<signature>`: works in an `<img>` tag without a key, and
/// cannot be guessed from a task id.
pub fn image_url(base_url: &str, mj_id: &str, signer: &Signer) -> String {
    format!("{base_url}/mj/image/{mj_id}?sig={}", signer.sign(mj_id))
}

/// `<base>/mj/video/<task id>?sig=<signature>`: the task's video, like [`image_url`].
pub fn video_url(base_url: &str, mj_id: &str, signer: &Signer) -> String {
    format!("{base_url}/mj/video/{mj_id}?sig={}", signer.sign(mj_id))
}
