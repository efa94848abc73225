//! The midjourney-proxy(-plus) wire format: request bodies, the submit envelope and the task
//! JSON. The simulator speaks it, the upstream client reads it, and the gateway accepts the
//! same request bodies from its clients.

use crate::domain::Button;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Upstream answer codes (midjourney-proxy `ReturnCode`).
pub mod code {
    pub const SUCCESS: i32 = 1;
    pub const NOT_FOUND: i32 = 3;
    pub const VALIDATION_ERROR: i32 = 4;
    pub const FAILURE: i32 = 9;
    pub const EXISTED: i32 = 21;
    pub const IN_QUEUE: i32 = 22;
    pub const QUEUE_REJECTED: i32 = 23;
    pub const BANNED_PROMPT: i32 = 24;
}

/// `{"code", "description", "result", "properties"}`: the answer to every submit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitResult {
    pub code: i32,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub result: Value,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

impl SubmitResult {
    pub fn new(code: i32, description: impl Into<String>, result: impl Into<Value>) -> Self {
        Self {
            code,
            description: description.into(),
            result: result.into(),
            properties: Map::new(),
        }
    }

    pub fn with_property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_string(), value.into());
        self
    }

    /// The task id in `result`, when it is a string.
    pub fn task_id(&self) -> Option<&str> {
        self.result.as_str().filter(|s| !s.is_empty())
    }
}

/// The task object as midjourney-proxy serves it from `fetch` and `list-by-condition`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskJson {
    pub id: String,
    pub action: Option<String>,
    pub custom_id: Option<String>,
    pub bot_type: Option<String>,
    pub prompt: Option<String>,
    pub prompt_en: Option<String>,
    pub description: Option<String>,
    pub state: Option<String>,
    pub submit_time: Option<i64>,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    pub image_url: Option<String>,
    pub video_url: Option<String>,
    pub video_urls: Option<Vec<String>>,
    pub status: Option<String>,
    pub progress: Option<String>,
    pub fail_reason: Option<String>,
    pub buttons: Vec<Button>,
    pub properties: Map<String, Value>,
}

/// `accountFilter`: which upstream accounts may run the task. Only `modes` is interpreted;
/// the rest is passed through untouched where a channel allows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccountFilter {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImagineRequest {
    pub prompt: Option<String>,
    pub bot_type: Option<String>,
    pub base64_array: Vec<String>,
    pub account_filter: Option<AccountFilter>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlendRequest {
    pub base64_array: Vec<String>,
    pub dimensions: Option<String>,
    pub bot_type: Option<String>,
    pub account_filter: Option<AccountFilter>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DescribeRequest {
    pub base64: Option<String>,
    pub link: Option<String>,
    pub bot_type: Option<String>,
    pub account_filter: Option<AccountFilter>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ShortenRequest {
    pub prompt: Option<String>,
    pub bot_type: Option<String>,
    pub account_filter: Option<AccountFilter>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ActionRequest {
    pub task_id: Option<String>,
    pub custom_id: Option<String>,
    pub choose_same_channel: Option<bool>,
    pub account_filter: Option<AccountFilter>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModalRequest {
    pub task_id: Option<String>,
    pub prompt: Option<String>,
    pub mask_base64: Option<String>,
    pub notify_hook: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChangeRequest {
    pub task_id: Option<String>,
    pub action: Option<String>,
    pub index: Option<i64>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SimpleChangeRequest {
    pub content: Option<String>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SwapFaceRequest {
    pub source_base64: Option<String>,
    pub target_base64: Option<String>,
    pub account_filter: Option<AccountFilter>,
    pub notify_hook: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UploadRequest {
    pub base64_array: Vec<String>,
    pub filter: Option<AccountFilter>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListByConditionRequest {
    pub ids: Vec<String>,
}
