//! A simulated task: what the state holds of it, what a route asks to create, and what a
//! runner takes when it starts.

use super::render::Job;
use crate::domain::{BotType, Button, TaskAction, TaskStatus};
use crate::proto::TaskJson;
use tokio::sync::mpsc;

/// A task as the simulator holds it.
pub(super) struct SimTask {
    pub id: String,
    pub action: TaskAction,
    pub bot_type: BotType,
    pub prompt: String,
    pub prompt_en: String,
    pub description: String,
    pub state: Option<String>,
    pub status: TaskStatus,
    pub progress: u8,
    pub submit_time: i64,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    pub image_url: Option<String>,
    /// Name of the finished image among the served files, for actions on this task.
    pub image_file: Option<String>,
    pub fail_reason: Option<String>,
    pub buttons: Vec<Button>,
    /// The Discord job uuid: in the image name, the buttons and `messageHash`.
    pub hash: String,
    pub seed: u32,
    pub account: usize,
    /// What the task will produce; taken by the runner (or kept while `MODAL`).
    pub job: Option<Job>,
    pub fail: bool,
    pub stall: bool,
    pub forgotten: bool,
    pub notify_hook: Option<String>,
    pub notifier: Option<mpsc::UnboundedSender<TaskJson>>,
}

/// What a submit route asks the state to create.
pub(super) struct NewTask {
    pub action: TaskAction,
    pub bot_type: BotType,
    pub prompt: String,
    pub description: String,
    pub state: Option<String>,
    pub notify_hook: Option<String>,
    pub seed: u32,
    pub job: Job,
    /// The account of the parent task, for actions.
    pub account: Option<usize>,
    pub modal: bool,
}

/// What a runner needs from a task that starts.
pub(super) struct Started {
    pub job: Job,
    pub action: TaskAction,
    pub prompt: String,
    pub seed: u32,
    pub hash: String,
    pub fail: bool,
    pub stall: bool,
}
