//! What the simulator knows: its tasks, its accounts with their running slots and queues,
//! the files it serves and the requests it received. One lock over all of it; nothing slow
//! happens while it is held.

use super::render::{Job, Rendered};
use super::task::{NewTask, SimTask, Started};
use super::view;
use super::{Faults, Pace, RequestRecord, SimConfig};
use crate::domain::ids::now_ms;
use crate::domain::{Mode, TaskAction, TaskStatus};
use crate::proto::{SubmitResult, TaskJson, code};
use bytes::Bytes;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Account {
    instance_id: String,
    running: usize,
    queue: VecDeque<String>,
}

struct StoredFile {
    content_type: &'static str,
    bytes: Bytes,
}

struct Inner {
    faults: Faults,
    tasks: HashMap<String, SimTask>,
    accounts: Vec<Account>,
    files: HashMap<String, StoredFile>,
    requests: Vec<RequestRecord>,
    last_id: i64,
}

/// Everything one simulator shares between its routes and its runners.
pub(super) struct SimState {
    pub config: SimConfig,
    pub public_url: String,
    pub shutdown: CancellationToken,
    http: reqwest::Client,
    inner: Mutex<Inner>,
}

impl SimState {
    pub fn new(config: SimConfig, public_url: String, shutdown: CancellationToken) -> Self {
        let accounts = (0..config.accounts.max(1))
            .map(|n| Account {
                instance_id: format!("{}", 1_180_000_000_000_000_000u64 + n as u64),
                running: 0,
                queue: VecDeque::new(),
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("the TLS backend is compiled in");
        let inner = Inner {
            faults: config.faults.clone(),
            tasks: HashMap::new(),
            accounts,
            files: HashMap::new(),
            requests: Vec::new(),
            last_id: 0,
        };
        Self {
            config,
            public_url: public_url.trim_end_matches('/').to_string(),
            shutdown,
            http,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn record(&self, request: RequestRecord) {
        self.lock().requests.push(request);
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Whether this simulator's accounts can run a task in `mode` (none asked: any).
    pub fn offers(&self, modes: &[Mode]) -> bool {
        modes.is_empty() || modes.iter().any(|m| self.config.modes.contains(m))
    }

    /// Time between two progress steps of a task doing `action`.
    pub fn step(&self, action: TaskAction) -> Duration {
        match self.config.pace {
            Pace::Fast => Duration::from_millis(8),
            Pace::Step(step) => step,
            Pace::Real => match action {
                TaskAction::Upscale | TaskAction::Describe | TaskAction::Shorten => {
                    Duration::from_secs(3)
                }
                _ => Duration::from_secs(6),
            },
        }
    }

    /// Creates a task and either starts it, queues it or refuses it, answering as
    /// midjourney-proxy does. Returns the answer and the id to start now, if any.
    pub fn admit(&self, new: NewTask, faults: &Faults) -> (SubmitResult, Option<String>) {
        let mut inner = self.lock();
        let account = match new.account {
            Some(account) => account,
            None => match pick_account(&inner.accounts, &self.config) {
                Some(account) => account,
                None => {
                    let instance = inner.accounts[0].instance_id.clone();
                    let answer = SubmitResult::new(
                        code::QUEUE_REJECTED,
                        "队列已满，请稍后尝试",
                        Value::Null,
                    )
                    .with_property("discordInstanceId", instance);
                    return (answer, None);
                }
            },
        };
        let id = next_id(&mut inner.last_id);
        let has = |word: &str| !word.is_empty() && new.prompt.contains(word);
        let notifier = new
            .notify_hook
            .as_ref()
            .map(|hook| view::notifier(&self.http, hook.clone(), &self.shutdown));
        let task = SimTask {
            id: id.clone(),
            action: new.action,
            bot_type: new.bot_type,
            prompt_en: new.prompt.clone(),
            prompt: new.prompt.clone(),
            description: new.description,
            state: new.state,
            status: if new.modal {
                TaskStatus::Modal
            } else {
                TaskStatus::NotStart
            },
            progress: 0,
            submit_time: now_ms(),
            start_time: None,
            finish_time: None,
            image_url: None,
            image_file: None,
            fail_reason: None,
            buttons: Vec::new(),
            hash: uuid::Uuid::new_v4().to_string(),
            seed: new.seed,
            account,
            job: Some(new.job),
            fail: has(&faults.fail_word),
            stall: has(&faults.stall_word),
            forgotten: has(&faults.forget_word),
            notify_hook: new.notify_hook,
            notifier,
        };
        let final_prompt = task.prompt.clone();
        inner.tasks.insert(id.clone(), task);
        if new.modal {
            let answer = SubmitResult::new(code::EXISTED, "Waiting for window confirm", id)
                .with_property("finalPrompt", final_prompt)
                .with_property("remix", true);
            return (answer, None);
        }
        let (answer, start) = enqueue(&mut inner, account, id, &self.config);
        (answer, start)
    }

    /// Leaves `MODAL` with the pop-up's job and schedules the task on its account.
    pub fn confirm_modal(
        &self,
        id: &str,
        prompt: Option<String>,
        job: Job,
    ) -> (SubmitResult, Option<String>) {
        let mut inner = self.lock();
        let Inner {
            tasks, accounts, ..
        } = &mut *inner;
        let Some(task) = tasks.get_mut(id) else {
            return (
                SubmitResult::new(code::NOT_FOUND, "关联任务不存在或已失效", Value::Null),
                None,
            );
        };
        if task.status != TaskStatus::Modal {
            return (
                SubmitResult::new(code::VALIDATION_ERROR, "任务状态错误", Value::Null),
                None,
            );
        }
        if let Some(prompt) = prompt {
            task.prompt_en = prompt.clone();
            task.prompt = prompt;
        }
        task.status = TaskStatus::NotStart;
        task.job = Some(job);
        let account = task.account;
        view::emit(task, &accounts[task.account].instance_id);
        enqueue(&mut inner, account, id.to_string(), &self.config)
    }

    /// A copy of what the routes need to know about a visible task.
    pub fn with_task<T>(&self, id: &str, read: impl FnOnce(&SimTask) -> T) -> Option<T> {
        let inner = self.lock();
        let forget_all = inner.faults.forget_all;
        inner
            .tasks
            .get(id)
            .filter(|t| !forget_all && !t.forgotten)
            .map(read)
    }

    /// The protocol view of the visible tasks among `ids`, in the order asked.
    pub fn task_views(&self, ids: &[String]) -> Vec<TaskJson> {
        let inner = self.lock();
        if inner.faults.forget_all {
            return Vec::new();
        }
        ids.iter()
            .filter_map(|id| inner.tasks.get(id))
            .filter(|t| !t.forgotten)
            .map(|t| view::view(t, &inner.accounts[t.account].instance_id))
            .collect()
    }

    /// The newest visible tasks, at most `limit`.
    pub fn latest_views(&self, limit: usize) -> Vec<TaskJson> {
        let inner = self.lock();
        if inner.faults.forget_all {
            return Vec::new();
        }
        let mut tasks: Vec<&SimTask> = inner.tasks.values().filter(|t| !t.forgotten).collect();
        tasks.sort_by(|a, b| b.id.cmp(&a.id));
        tasks
            .into_iter()
            .take(limit)
            .map(|t| view::view(t, &inner.accounts[t.account].instance_id))
            .collect()
    }

    pub fn file(&self, name: &str) -> Option<(&'static str, Bytes)> {
        let inner = self.lock();
        inner
            .files
            .get(name)
            .map(|f| (f.content_type, f.bytes.clone()))
    }

    /// Stores a file and returns its public URL.
    pub fn put_file(
        &self,
        folder: &str,
        name: String,
        content_type: &'static str,
        bytes: Bytes,
    ) -> String {
        let mut inner = self.lock();
        let channel = inner.accounts[0].instance_id.clone();
        inner.files.insert(
            name.clone(),
            StoredFile {
                content_type,
                bytes,
            },
        );
        format!("{}/attachments/{channel}/{folder}/{name}", self.public_url)
    }

    /// `NOT_START` → `SUBMITTED`: hands the runner the job to render.
    pub fn begin(&self, id: &str) -> Option<Started> {
        self.change(id, |task, _| {
            task.status = TaskStatus::Submitted;
            task.progress = 0;
            task.start_time = Some(now_ms());
            Some(Started {
                job: task.job.take()?,
                action: task.action,
                prompt: task.prompt.clone(),
                seed: task.seed,
                hash: task.hash.clone(),
                fail: task.fail,
                stall: task.stall,
            })
        })
        .flatten()
    }

    /// `IN_PROGRESS` at `percent`, with a preview image when there is one.
    pub fn progress(&self, id: &str, percent: u8, preview: Option<Bytes>) {
        let hash = self.with_any(id, |t| t.hash.clone()).unwrap_or_default();
        let image = preview.map(|png| {
            let name = format!("preview_{percent}_{hash}.png");
            (name.clone(), self.put_file(id, name, "image/png", png))
        });
        self.change(id, |task, files| {
            task.status = TaskStatus::InProgress;
            task.progress = percent;
            show(task, files, image);
        });
    }

    /// `SUCCESS` with what the job produced.
    pub fn succeed(&self, id: &str, rendered: Rendered) {
        let hash = self.with_any(id, |t| t.hash.clone()).unwrap_or_default();
        let image = rendered.png.map(|png| {
            let name = format!("{}_{hash}.png", file_stem(&rendered.prompt_for_name));
            (name.clone(), self.put_file(id, name, "image/png", png))
        });
        self.change(id, |task, files| {
            match image {
                Some(image) => show(task, files, Some(image)),
                // Describe shows the image it was given, which may be one of ours.
                None => {
                    show(task, files, None);
                    task.image_file = rendered
                        .image_url
                        .as_deref()
                        .and_then(|url| url.rsplit('/').next())
                        .filter(|name| files.contains_key(*name))
                        .map(str::to_string);
                    task.image_url = rendered.image_url;
                }
            }
            if let Some(text) = rendered.text {
                task.prompt_en = text.clone();
                task.prompt = text;
            }
            task.buttons = rendered.buttons;
            task.status = TaskStatus::Success;
            task.progress = 100;
            task.finish_time = Some(now_ms());
        });
    }

    pub fn fail(&self, id: &str, reason: &str) {
        self.change(id, |task, _| {
            task.status = TaskStatus::Failure;
            task.fail_reason = Some(reason.to_string());
            task.finish_time = Some(now_ms());
        });
    }

    /// Changes a task under the lock and sends its new state to its hook, which closes after
    /// a final state.
    fn change<T>(
        &self,
        id: &str,
        apply: impl FnOnce(&mut SimTask, &mut HashMap<String, StoredFile>) -> T,
    ) -> Option<T> {
        let mut inner = self.lock();
        let Inner {
            tasks,
            accounts,
            files,
            ..
        } = &mut *inner;
        let task = tasks.get_mut(id)?;
        let out = apply(task, files);
        view::emit(task, &accounts[task.account].instance_id);
        if task.status.is_final() {
            task.notifier = None;
        }
        Some(out)
    }

    /// Frees the task's slot; returns the next queued task of that account to start.
    pub fn release(&self, id: &str) -> Option<String> {
        let mut inner = self.lock();
        let account = inner.tasks.get(id)?.account;
        let slot = &mut inner.accounts[account];
        match slot.queue.pop_front() {
            Some(next) => Some(next),
            None => {
                slot.running = slot.running.saturating_sub(1);
                None
            }
        }
    }

    /// A task's fields regardless of the forget faults (runners still see what they run).
    pub fn with_any<T>(&self, id: &str, read: impl FnOnce(&SimTask) -> T) -> Option<T> {
        self.lock().tasks.get(id).map(read)
    }

    /// A served image's bytes by the task it belongs to.
    pub fn task_image(&self, id: &str) -> Option<Bytes> {
        let inner = self.lock();
        let name = inner.tasks.get(id)?.image_file.as_ref()?;
        inner.files.get(name).map(|f| f.bytes.clone())
    }
}

/// An account with a free slot, else the one with the shortest queue that has room.
fn pick_account(accounts: &[Account], config: &SimConfig) -> Option<usize> {
    let free = accounts.iter().position(|a| a.running < config.concurrency);
    free.or_else(|| {
        accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.queue.len() < config.queue_size)
            .min_by_key(|(_, a)| a.queue.len())
            .map(|(n, _)| n)
    })
}

/// Runs the task now if its account has a slot, else queues it (code 22).
fn enqueue(
    inner: &mut Inner,
    account: usize,
    id: String,
    config: &SimConfig,
) -> (SubmitResult, Option<String>) {
    let slot = &mut inner.accounts[account];
    let instance = slot.instance_id.clone();
    if slot.running < config.concurrency {
        slot.running += 1;
        let answer = SubmitResult::new(code::SUCCESS, "提交成功", id.clone())
            .with_property("discordInstanceId", instance.clone())
            .with_property("discordChannelId", instance);
        return (answer, Some(id));
    }
    if slot.queue.len() >= config.queue_size {
        inner.tasks.remove(&id);
        let answer = SubmitResult::new(code::QUEUE_REJECTED, "队列已满，请稍后尝试", Value::Null)
            .with_property("discordInstanceId", instance);
        return (answer, None);
    }
    slot.queue.push_back(id.clone());
    let ahead = slot.queue.len();
    let answer = SubmitResult::new(code::IN_QUEUE, format!("排队中，前面还有{ahead}个任务"), id)
        .with_property("numberOfQueues", ahead)
        .with_property("discordInstanceId", instance.clone())
        .with_property("discordChannelId", instance);
    (answer, None)
}

/// Replaces the task's current picture (a preview's file is dropped with it).
fn show(
    task: &mut SimTask,
    files: &mut HashMap<String, StoredFile>,
    image: Option<(String, String)>,
) {
    if let Some(old) = task.image_file.take() {
        files.remove(&old);
    }
    if let Some((name, url)) = image {
        task.image_file = Some(name);
        task.image_url = Some(url);
    }
}

/// Ids in the upstream's shape, strictly increasing: milliseconds and a 3-digit counter.
fn next_id(last: &mut i64) -> String {
    *last = (now_ms() * 1000).max(*last + 1);
    last.to_string()
}

/// Discord-like file names: the prompt's first words joined by underscores.
fn file_stem(prompt: &str) -> String {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(6)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        "sim".to_string()
    } else {
        format!("sim_{}", words.join("_"))
    }
}
