//! Forwarding a client's submission: record the task first, then offer it to eligible
//! channels one at a time until one accepts it (SPEC 1.3). A task is never sent twice to
//! channels that may have acted on it, and nothing accepted is lost: a task that no channel
//! took ends in `FAILURE` with the reason.

use super::callback::callback_url;
use super::error::{ApiError, Caller, Envelope, code};
use super::lifecycle::fail_task;
use super::translate::{Verdict, verdict};
use crate::domain::ids::{mint_task_id, now_ms};
use crate::domain::prices::price_of;
use crate::domain::{BotType, Mode, TaskAction, TaskStatus};
use crate::state::AppState;
use crate::store::{Channel, NewTask, StoreError, Task};
use crate::upstream::UpstreamError;
use serde_json::{Value, json};

/// How many channels one submission may be offered to.
const MAX_ATTEMPTS: usize = 3;

/// A task to create and forward.
#[derive(Debug, Clone)]
pub struct Submission {
    pub action: TaskAction,
    /// Upstream path under `/mj`, e.g. `/submit/imagine`.
    pub path: &'static str,
    /// The upstream body, without the client's `notifyHook`, `state` or `accountFilter`.
    pub body: Value,
    pub prompt: String,
    pub description: String,
    pub state: Option<String>,
    pub bot_type: BotType,
    pub mode: Option<Mode>,
    pub notify_hook: Option<String>,
    /// Other `accountFilter` fields, passed on only to channels that allow it.
    pub account_filter: serde_json::Map<String, Value>,
    /// For actions: the task acted on. The action runs on that task's channel, under the
    /// upstream's id for it.
    pub parent: Option<Task>,
    pub custom_id: Option<String>,
    /// Buttons that open a pop-up are accepted with code 21.
    pub expects_modal: bool,
}

/// Creates the task, forwards it, and answers the client.
pub async fn submit_task(
    state: &AppState,
    caller: &Caller,
    sub: Submission,
) -> Result<Envelope, ApiError> {
    let candidates = candidate_channels(state, &sub).await?;
    // A task that opens a pop-up costs nothing until the pop-up is submitted.
    let price = if sub.expects_modal {
        0
    } else {
        price_for(state, sub.action, sub.mode).await?
    };
    let task = insert_new_task(state, caller, &sub, price).await?;

    let mut last_problem = None;
    for channel in candidates.iter().take(MAX_ATTEMPTS) {
        if let Some(cap) = channel.max_in_flight {
            if !state
                .store
                .reserve_channel(&task.mj_id, channel.id, cap)
                .await?
            {
                last_problem = Some(format!("channel {} is full", channel.name));
                continue;
            }
        }
        let callback = channel.callbacks.then(|| callback_url(state, channel.id));
        let body = upstream_body(&sub, channel, callback);
        let answer = state.upstream.submit(channel, sub.path, &body).await;
        let verdict = match answer {
            Ok(answer) => verdict(&answer, sub.expects_modal),
            Err(e) if e.safe_to_retry_elsewhere() => Verdict::TryElsewhere(e.to_string()),
            Err(UpstreamError::Timeout) => {
                Verdict::Unclear("the upstream did not answer in time".to_string())
            }
            Err(e) => Verdict::Unclear(e.to_string()),
        };
        match &verdict {
            Verdict::TryElsewhere(problem) | Verdict::Unclear(problem) => {
                state.health.failed(channel.id, problem)
            }
            _ => state.health.succeeded(channel.id),
        }
        match verdict {
            Verdict::Accepted {
                upstream_id,
                status,
                queue_ahead,
            } => {
                return accepted(
                    state,
                    caller,
                    &task,
                    channel,
                    &upstream_id,
                    status,
                    queue_ahead,
                )
                .await;
            }
            Verdict::Existing { upstream_id } => {
                return existing(state, caller, &task, channel, &upstream_id).await;
            }
            Verdict::Refused {
                description,
                properties,
            } => {
                fail_task(
                    state,
                    &task.mj_id,
                    &format!("refused by the upstream: {description}"),
                )
                .await?;
                return Err(ApiError::BadRequest {
                    description,
                    properties,
                });
            }
            Verdict::TryElsewhere(problem) => {
                tracing::warn!(channel = %channel.name, task = %task.mj_id, %problem, "channel did not take the task");
                last_problem = Some(problem);
            }
            Verdict::Unclear(problem) => {
                tracing::warn!(channel = %channel.name, task = %task.mj_id, %problem, "unclear upstream answer");
                fail_task(
                    state,
                    &task.mj_id,
                    &format!("the upstream gave no usable answer: {problem}"),
                )
                .await?;
                return Err(ApiError::Upstream(
                    "the upstream did not confirm the task; it was not charged".to_string(),
                ));
            }
        }
    }
    let reason = match last_problem {
        Some(problem) => format!("no channel took the task (last: {problem})"),
        None => "no channel is available".to_string(),
    };
    fail_task(state, &task.mj_id, &reason).await?;
    Err(ApiError::NoChannel(
        "no channel can take the task now, try again later".to_string(),
    ))
}

/// Submits the pop-up of a task in `MODAL`; the task then runs like any other. The task
/// leaves `MODAL` before the upstream is asked, so that two racing submits cannot both run;
/// if the upstream refuses, the task fails (and a later pop-up starts from the button again).
pub async fn submit_modal(
    state: &AppState,
    task: &Task,
    mut body: Value,
) -> Result<Envelope, ApiError> {
    let (channel, upstream_id) = parent_channel(state, task).await?;
    let price = price_for(state, task.action, task.mode()).await?;
    if !state
        .store
        .begin_modal_task(&task.mj_id, price, now_ms())
        .await?
    {
        return Err(ApiError::bad_request(format!(
            "task {} is not waiting for a pop-up",
            task.mj_id
        )));
    }
    state.task_changed();
    body["taskId"] = Value::String(upstream_id);
    let answer = state
        .upstream
        .submit(&channel, "/submit/modal", &body)
        .await;
    let problem = match answer.as_ref().map(|a| verdict(a, false)) {
        Ok(Verdict::Accepted {
            queue_ahead: Some(ahead),
            ..
        }) => {
            return Ok(queued(task.mj_id.clone(), ahead));
        }
        Ok(Verdict::Accepted { .. } | Verdict::Existing { .. }) => {
            return Ok(Envelope::new(
                code::SUCCESS,
                "Submit success",
                task.mj_id.clone(),
            ));
        }
        Ok(Verdict::Refused {
            description,
            properties,
        }) => {
            fail_task(
                state,
                &task.mj_id,
                &format!("pop-up refused by the upstream: {description}"),
            )
            .await?;
            return Err(ApiError::BadRequest {
                description,
                properties,
            });
        }
        Ok(Verdict::TryElsewhere(problem) | Verdict::Unclear(problem)) => problem,
        Err(e) => e.to_string(),
    };
    tracing::warn!(channel = %channel.name, task = %task.mj_id, %problem, "pop-up not taken");
    fail_task(
        state,
        &task.mj_id,
        &format!("the upstream did not take the pop-up: {problem}"),
    )
    .await?;
    Err(ApiError::Upstream(
        "the upstream did not take the pop-up".to_string(),
    ))
}

/// The channel that holds a task, and the upstream's id for it.
pub async fn parent_channel(state: &AppState, task: &Task) -> Result<(Channel, String), ApiError> {
    let lost = || ApiError::bad_request(format!("task {} is not held by any channel", task.mj_id));
    let channel_id = task.channel_id.ok_or_else(lost)?;
    let upstream_id = task.upstream_id.clone().ok_or_else(lost)?;
    let channel = state.store.channel(channel_id).await?.ok_or_else(lost)?;
    if !channel.enabled {
        return Err(ApiError::NoChannel(
            "the channel that holds this task is disabled".to_string(),
        ));
    }
    Ok((channel, upstream_id))
}

/// Channels that may take the submission, in the order to try them: the parent's channel
/// for actions; otherwise enabled channels offering the mode and bot type, with room under
/// their cap, ordered by health, priority and weight.
async fn candidate_channels(state: &AppState, sub: &Submission) -> Result<Vec<Channel>, ApiError> {
    if let Some(parent) = &sub.parent {
        return Ok(vec![parent_channel(state, parent).await?.0]);
    }
    let channels = state.store.list_channels().await?;
    let mut eligible: Vec<Channel> = channels
        .into_iter()
        .filter(|c| c.enabled && c.serves(sub.bot_type) && sub.mode.is_none_or(|m| c.offers(m)))
        .collect();
    if eligible.is_empty() {
        return Err(ApiError::NoChannel(match sub.mode {
            Some(mode) => format!("no channel offers {mode} mode for {}", sub.bot_type),
            None => "no channel is available".to_string(),
        }));
    }
    if eligible.iter().any(|c| c.max_in_flight.is_some()) {
        let in_flight = state.store.in_flight_by_channel().await?;
        eligible.retain(|c| {
            c.max_in_flight
                .is_none_or(|cap| in_flight.get(&c.id).copied().unwrap_or(0) < cap)
        });
    }
    let ordered = state.health.order(eligible);
    if ordered.is_empty() {
        return Err(ApiError::NoChannel(
            "every channel is full or resting after failures, try again later".to_string(),
        ));
    }
    Ok(ordered)
}

/// What `action` costs in `mode` now (prices may change while the gateway runs).
pub async fn price_for(
    state: &AppState,
    action: TaskAction,
    mode: Option<Mode>,
) -> Result<i64, ApiError> {
    let rules = state.store.list_prices().await?;
    Ok(price_of(&rules, action, mode))
}

/// Records the task and charges `price` for it, atomically.
pub(super) async fn insert_new_task(
    state: &AppState,
    caller: &Caller,
    sub: &Submission,
    price: i64,
) -> Result<Task, ApiError> {
    let now = now_ms();
    let mut new = NewTask {
        mj_id: String::new(),
        user_id: caller.user.id,
        key_id: Some(caller.key.id),
        parent_id: sub.parent.as_ref().map(|p| p.mj_id.clone()),
        action: sub.action,
        status: TaskStatus::NotStart,
        prompt: sub.prompt.clone(),
        description: sub.description.clone(),
        state: sub.state.clone(),
        bot_type: sub.bot_type,
        mode: sub.mode,
        custom_id: sub.custom_id.clone(),
        notify_hook: sub
            .notify_hook
            .clone()
            .or_else(|| state.config.notify_hook.clone()),
        submit_time: now,
    };
    // Ids are milliseconds plus three random digits: a clash is rare, and retried.
    for _ in 0..5 {
        new.mj_id = mint_task_id(now_ms());
        match state.store.insert_task(&new, price).await {
            Ok(task) => return Ok(task),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal("could not mint a unique task id"))
}

/// The body a channel receives: the client's, with the mode as `accountFilter.modes`, the
/// parent's upstream id in `taskId`, and the gateway's callback URL (if the channel has
/// callbacks) as `notifyHook`. The client's `notifyHook` never goes upstream.
fn upstream_body(sub: &Submission, channel: &Channel, callback: Option<String>) -> Value {
    let mut body = sub.body.clone();
    let mut filter = if channel.pass_account_filter {
        sub.account_filter.clone()
    } else {
        serde_json::Map::new()
    };
    if let Some(mode) = sub.mode {
        filter.insert("modes".to_string(), json!([mode.as_str()]));
    }
    if !filter.is_empty() {
        body["accountFilter"] = Value::Object(filter);
    }
    if let Some(upstream_id) = sub.parent.as_ref().and_then(|p| p.upstream_id.clone()) {
        body["taskId"] = Value::String(upstream_id);
    }
    if let Some(callback) = callback {
        body["notifyHook"] = Value::String(callback);
    }
    body
}

async fn accepted(
    state: &AppState,
    caller: &Caller,
    task: &Task,
    channel: &Channel,
    upstream_id: &str,
    status: TaskStatus,
    queue_ahead: Option<i64>,
) -> Result<Envelope, ApiError> {
    match state
        .store
        .mark_forwarded(&task.mj_id, channel.id, upstream_id, status)
        .await
    {
        Ok(()) => {}
        // Another of our tasks already holds this upstream task: the upstream treated the
        // submission as the same task.
        Err(StoreError::Conflict(_)) => {
            return existing(state, caller, task, channel, upstream_id).await;
        }
        Err(StoreError::NotFound(_)) => {
            tracing::warn!(channel = %channel.name, task = %task.mj_id, upstream_id, "the upstream answered after the task had ended");
            return Err(ApiError::Upstream(
                "the upstream answered after the task had ended; it was not charged".to_string(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    state.task_changed();
    let id = task.mj_id.clone();
    Ok(match (status, queue_ahead) {
        (TaskStatus::Modal, _) => Envelope::new(code::MODAL, "Waiting for window confirm", id),
        (_, Some(ahead)) => queued(id, ahead),
        _ => Envelope::new(code::SUCCESS, "Submit success", id),
    })
}

/// The upstream says this is a task it already runs. If it is one of the caller's, answer
/// with it; either way the new row is not needed.
async fn existing(
    state: &AppState,
    caller: &Caller,
    task: &Task,
    channel: &Channel,
    upstream_id: &str,
) -> Result<Envelope, ApiError> {
    let known = state
        .store
        .task_by_upstream(channel.id, upstream_id)
        .await?;
    match known {
        Some(other) if other.user_id == caller.user.id && other.mj_id != task.mj_id => {
            fail_task(state, &task.mj_id, &format!("same task as {}", other.mj_id)).await?;
            Ok(Envelope::new(
                code::SUCCESS,
                "Task already exists",
                other.mj_id,
            ))
        }
        Some(_) => {
            fail_task(state, &task.mj_id, "the upstream reported a duplicate task").await?;
            Err(ApiError::Upstream(
                "the upstream reported this task as a duplicate".to_string(),
            ))
        }
        None => {
            state
                .store
                .mark_forwarded(&task.mj_id, channel.id, upstream_id, TaskStatus::Submitted)
                .await?;
            state.task_changed();
            Ok(Envelope::new(
                code::SUCCESS,
                "Task already exists",
                task.mj_id.clone(),
            ))
        }
    }
}

fn queued(id: String, ahead: i64) -> Envelope {
    let mut envelope = Envelope::new(code::IN_QUEUE, format!("In queue, {ahead} tasks ahead"), id);
    envelope
        .properties
        .insert("numberOfQueues".to_string(), json!(ahead));
    envelope
}
