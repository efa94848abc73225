//! What the store keeps: users, keys, channels, tasks, notifications. Plain data, loaded
//! with `FromRow`.

use crate::domain::task::protocol_enum;
use crate::domain::{BotType, Button, Mode, TaskAction, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

protocol_enum!(
    /// A user's role.
    Role {
        User => "user",
        Admin => "admin",
    }
);

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub balance: i64,
    pub enabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub access_token_hash: Option<String>,
}

/// An API key, without its secret (only the hash is stored).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub user_id: i64,
    pub key_hint: String,
    pub enabled: bool,
    pub expires_at: Option<i64>,
    pub quota_limit: Option<i64>,
    pub quota_used: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewKey {
    pub user_id: i64,
    pub key_hash: String,
    pub key_hint: String,
    pub expires_at: Option<i64>,
    pub quota_limit: Option<i64>,
    /// What the key's notifications are signed with.
    pub hook_secret: String,
}

/// An upstream midjourney-proxy server.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub base_url: String,
    pub secret: String,
    pub enabled: bool,
    pub priority: i64,
    pub weight: i64,
    pub modes: String,
    pub bot_types: String,
    pub max_in_flight: Option<i64>,
    pub pass_account_filter: bool,
    pub is_local: bool,
    /// Whether the channel is given the gateway's callback URL as each task's `notifyHook`.
    pub callbacks: bool,
    pub created_at: i64,
}

impl Channel {
    /// Whether the channel offers `mode` (its `modes` list).
    pub fn offers(&self, mode: crate::domain::Mode) -> bool {
        listed(&self.modes, mode.as_str())
    }

    /// Whether the channel serves `bot` (its `bot_types` list).
    pub fn serves(&self, bot: crate::domain::BotType) -> bool {
        listed(&self.bot_types, bot.as_str())
    }
}

fn listed(list: &str, item: &str) -> bool {
    list.split(',').any(|x| x.trim().eq_ignore_ascii_case(item))
}

/// A channel to create. `modes` and `bot_types` are comma-separated protocol words.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub base_url: String,
    pub secret: String,
    pub priority: i64,
    pub weight: i64,
    pub modes: String,
    pub bot_types: String,
    /// At most this many unfinished tasks at once; `None`: no cap.
    pub max_in_flight: Option<i64>,
    pub pass_account_filter: bool,
    pub is_local: bool,
    pub callbacks: bool,
}

impl Default for NewChannel {
    fn default() -> Self {
        Self {
            name: String::new(),
            base_url: String::new(),
            secret: String::new(),
            priority: 0,
            weight: 1,
            modes: "FAST,RELAX,TURBO".to_string(),
            bot_types: "MID_JOURNEY,NIJI_JOURNEY".to_string(),
            max_in_flight: None,
            pass_account_filter: false,
            is_local: false,
            callbacks: false,
        }
    }
}

/// Changes to a channel; `None` leaves a setting as it is. `max_in_flight: Some(0)` removes
/// the cap.
#[derive(Debug, Clone, Default)]
pub struct ChannelChange {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub secret: Option<String>,
    pub enabled: Option<bool>,
    pub priority: Option<i64>,
    pub weight: Option<i64>,
    pub modes: Option<String>,
    pub bot_types: Option<String>,
    pub max_in_flight: Option<i64>,
    pub pass_account_filter: Option<bool>,
    pub is_local: Option<bool>,
    pub callbacks: Option<bool>,
}

impl ChannelChange {
    /// The new channel these settings describe, with the defaults for what they leave out
    /// (`max_in_flight` 0: no cap).
    pub fn into_new(self) -> NewChannel {
        let defaults = NewChannel::default();
        NewChannel {
            name: self.name.unwrap_or(defaults.name),
            base_url: self.base_url.unwrap_or(defaults.base_url),
            secret: self.secret.unwrap_or(defaults.secret),
            priority: self.priority.unwrap_or(defaults.priority),
            weight: self.weight.unwrap_or(defaults.weight),
            modes: self.modes.unwrap_or(defaults.modes),
            bot_types: self.bot_types.unwrap_or(defaults.bot_types),
            max_in_flight: self.max_in_flight.filter(|cap| *cap > 0),
            pass_account_filter: self
                .pass_account_filter
                .unwrap_or(defaults.pass_account_filter),
            is_local: self.is_local.unwrap_or(defaults.is_local),
            callbacks: self.callbacks.unwrap_or(defaults.callbacks),
        }
    }
}

/// Buttons, kept as JSON text in the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Buttons(pub Vec<Button>);

/// A JSON object kept as text in the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonMap(pub Map<String, Value>);

/// A list of strings kept as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StringList(pub Vec<String>);

/// Values kept as JSON text in the database are read back from that text.
macro_rules! from_json_text {
    ($($name:ident),+) => {$(
        impl TryFrom<String> for $name {
            type Error = serde_json::Error;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                serde_json::from_str(&s)
            }
        }
    )+};
}

from_json_text!(Buttons, JsonMap, StringList);

/// A task as the gateway knows it. `mj_id` is the id clients see; `upstream_id` is the
/// channel's id for the same task and never leaves the gateway. A notification keeps a copy
/// of the task as it was (serde), to be shown to the client when it is sent.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Task {
    pub id: i64,
    pub mj_id: String,
    pub user_id: i64,
    pub key_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub upstream_id: Option<String>,
    pub parent_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub action: TaskAction,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub progress: String,
    pub prompt: String,
    pub prompt_en: String,
    pub description: String,
    pub state: Option<String>,
    #[sqlx(try_from = "String")]
    pub bot_type: BotType,
    pub mode: Option<String>,
    pub custom_id: Option<String>,
    pub notify_hook: Option<String>,
    pub submit_time: i64,
    pub start_time: i64,
    pub finish_time: i64,
    pub upstream_image_url: Option<String>,
    pub video_url: Option<String>,
    #[sqlx(try_from = "String")]
    pub video_urls: StringList,
    pub fail_reason: Option<String>,
    #[sqlx(try_from = "String")]
    pub buttons: Buttons,
    #[sqlx(try_from = "String")]
    pub properties: JsonMap,
    pub quota: i64,
    pub missing_polls: i64,
    pub updated_at: i64,
}

impl Task {
    pub fn mode(&self) -> Option<Mode> {
        self.mode.as_deref().and_then(|m| m.parse().ok())
    }
}

/// A task about to be forwarded.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub mj_id: String,
    pub user_id: i64,
    pub key_id: Option<i64>,
    pub parent_id: Option<String>,
    pub action: TaskAction,
    pub status: TaskStatus,
    pub prompt: String,
    pub description: String,
    pub state: Option<String>,
    pub bot_type: BotType,
    pub mode: Option<Mode>,
    pub custom_id: Option<String>,
    pub notify_hook: Option<String>,
    pub submit_time: i64,
}

/// What an upstream report (a poll or a callback) changes on a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUpdate {
    pub status: TaskStatus,
    pub progress: String,
    pub prompt: String,
    pub prompt_en: String,
    pub description: String,
    pub start_time: i64,
    pub finish_time: i64,
    pub upstream_image_url: Option<String>,
    pub video_url: Option<String>,
    pub video_urls: Vec<String>,
    pub fail_reason: Option<String>,
    pub buttons: Vec<Button>,
    pub properties: Map<String, Value>,
}

/// Which tasks a history page shows. Times are Unix milliseconds.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub user_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub mj_id: Option<String>,
    pub submitted_from: Option<i64>,
    pub submitted_to: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

/// A difference between a balance and what the ledger says it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerProblem(pub String);

protocol_enum!(
    /// What a task's stored file is.
    FileKind {
        Image => "image",
        Video => "video",
    }
);

protocol_enum!(
    /// Where a copy job stands.
    FileState {
        /// Waiting for (or being worked on by) the copier.
        Pending => "pending",
        /// Copied: `storage_key` and the rest are set.
        Done => "done",
        /// Given up on: the upstream's file was refused or never came.
        Failed => "failed",
    }
);

/// A task's file in the gateway's storage: first the job that copies it from the upstream,
/// then the record of the copy.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskFile {
    pub id: i64,
    pub mj_id: String,
    #[sqlx(try_from = "String")]
    pub kind: FileKind,
    pub source_url: String,
    #[sqlx(try_from = "String")]
    pub state: FileState,
    /// Claims so far, the current one included; a claim's holder names it when reporting.
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: i64,
    pub last_error: Option<String>,
    pub storage_key: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<i64>,
    pub etag: Option<String>,
}

/// A finished copy.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub storage_key: String,
    pub content_type: String,
    pub size: i64,
    /// A quoted strong entity tag, derived from the content.
    pub etag: String,
}

protocol_enum!(
    /// Where a notification is in its life.
    DeliveryState {
        /// Not sent yet, or to be tried again.
        Pending => "pending",
        Delivered => "delivered",
        /// Not delivered within the configured time; no more attempts.
        GivenUp => "given_up",
    }
);

/// One state of a task, to be POSTed to its `notifyHook`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub mj_id: String,
    /// Orders the notifications of one task.
    pub seq: i64,
    pub url: String,
    /// The key whose hook secret signs it.
    pub key_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: TaskStatus,
    pub progress: String,
    /// The task as it was, as JSON ([`Task`]'s serde form).
    pub payload: String,
    #[sqlx(try_from = "String")]
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// One try at sending a delivery.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeliveryAttempt {
    pub delivery_id: i64,
    pub at: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    Delivered,
    /// Try again at this time (Unix milliseconds).
    RetryAt(i64),
    GiveUp,
}
