//! The button routes: `action`, the classic `change` and `simple-change` forms, and `modal`,
//! which completes a task waiting for its pop-up. Each acts on one of the caller's tasks.

use super::error::{ApiError, Envelope};
use super::extract::{ApiJson, Caller, RouteMode};
use super::submit::Common;
use super::tasks::caller_task;
use super::validate;
use crate::domain::{ButtonAction, CustomId, TaskStatus};
use crate::proto::{ActionRequest, ChangeRequest, ModalRequest, SimpleChangeRequest};
use crate::relay::{submit_modal, submit_task};
use crate::state::AppState;
use crate::store::Task;
use axum::extract::State;
use serde_json::json;

pub async fn action(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Envelope, ApiError> {
    let task_id = validate::task_id(req.task_id.as_deref())?;
    let custom_id = validate::custom_id(req.custom_id.as_deref())?;
    let parent = caller_task(&state, &caller, &task_id).await?;
    let common = Common::read(
        &state,
        route,
        None,
        req.account_filter,
        req.notify_hook,
        req.state,
    )
    .await?;
    run_button(
        &state,
        &caller,
        parent,
        custom_id,
        common,
        req.choose_same_channel,
    )
    .await
}

pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<ChangeRequest>,
) -> Result<Envelope, ApiError> {
    let task_id = validate::task_id(req.task_id.as_deref())?;
    let action = match req.action.as_deref().unwrap_or_default() {
        "UPSCALE" => ChangeKind::Upscale,
        "VARIATION" => ChangeKind::Variation,
        "REROLL" => ChangeKind::Reroll,
        other => {
            return Err(ApiError::bad_request(format!(
                "action must be UPSCALE, VARIATION or REROLL, not `{other}`"
            )));
        }
    };
    let index = match (action, req.index) {
        (ChangeKind::Reroll, _) => 0,
        (_, Some(i @ 1..=4)) => i as u8,
        _ => return Err(ApiError::bad_request("index must be 1 to 4")),
    };
    let parent = caller_task(&state, &caller, &task_id).await?;
    let custom_id = button_for_change(&parent, action, index)?;
    let common = Common::read(&state, route, None, None, req.notify_hook, req.state).await?;
    run_button(&state, &caller, parent, custom_id, common, None).await
}

pub async fn simple_change(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<SimpleChangeRequest>,
) -> Result<Envelope, ApiError> {
    let content = req.content.unwrap_or_default();
    let (task_id, action, index) = parse_simple_change(&content)?;
    let parent = caller_task(&state, &caller, &task_id).await?;
    let custom_id = button_for_change(&parent, action, index)?;
    let common = Common::read(&state, route, None, None, req.notify_hook, req.state).await?;
    run_button(&state, &caller, parent, custom_id, common, None).await
}

pub async fn modal(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ModalRequest>,
) -> Result<Envelope, ApiError> {
    let task_id = validate::task_id(req.task_id.as_deref())?;
    let task = caller_task(&state, &caller, &task_id).await?;
    if task.status != TaskStatus::Modal {
        return Err(ApiError::bad_request(format!(
            "task {task_id} is {}, not waiting for a pop-up (MODAL)",
            task.status
        )));
    }
    let needs_mask = task
        .custom_id
        .as_deref()
        .and_then(|c| CustomId::parse(c).ok())
        .is_some_and(|c| c.action == ButtonAction::VaryRegion);
    let mut body = json!({});
    if let Some(prompt) = req
        .prompt
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        body["prompt"] = json!(validate::prompt("prompt", Some(prompt))?);
    }
    match req.mask_base64.as_deref().filter(|m| !m.is_empty()) {
        Some(mask) => {
            validate::image_data_url("maskBase64", mask)?;
            body["maskBase64"] = json!(mask);
        }
        None if needs_mask => {
            return Err(ApiError::bad_request(
                "maskBase64 is required for Vary (Region)",
            ));
        }
        None => {}
    }
    submit_modal(&state, &task, body).await
}

/// Presses a button of `parent`: the customId must be one of its buttons.
async fn run_button(
    state: &AppState,
    caller: &Caller,
    parent: Task,
    custom_id: CustomId,
    common: Common,
    choose_same_channel: Option<bool>,
) -> Result<Envelope, ApiError> {
    if parent.status != TaskStatus::Success {
        return Err(ApiError::bad_request(format!(
            "task {} is {}; buttons work on finished (SUCCESS) tasks",
            parent.mj_id, parent.status
        )));
    }
    let raw = custom_id.to_string();
    let button = parent
        .buttons
        .0
        .iter()
        .find(|b| b.custom_id == raw)
        .ok_or_else(|| {
            ApiError::bad_request(format!("customId is not a button of task {}", parent.mj_id))
        })?;
    let label = if button.label.is_empty() {
        button.emoji.clone()
    } else {
        button.label.clone()
    };
    let description = format!("{} {}", parent.mj_id, label);
    // The action always runs on the parent's channel; `chooseSameChannel` (stay on the
    // parent's Discord account) is the upstream's to honour.
    let mut body = json!({ "customId": raw });
    if let Some(same) = choose_same_channel {
        body["chooseSameChannel"] = json!(same);
    }
    let mut sub = common.submission(
        custom_id.action.task_action(),
        "/submit/action",
        body,
        parent.prompt.clone(),
        description,
    );
    sub.bot_type = parent.bot_type;
    sub.mode = sub.mode.or(parent.mode());
    sub.custom_id = Some(raw);
    sub.expects_modal = custom_id.action.needs_modal();
    sub.parent = Some(parent);
    submit_task(state, caller, sub).await
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ChangeKind {
    Upscale,
    Variation,
    Reroll,
}

/// The button that the classic `change` form means.
fn button_for_change(parent: &Task, kind: ChangeKind, index: u8) -> Result<CustomId, ApiError> {
    let wanted = |action: &ButtonAction| match (kind, action) {
        (ChangeKind::Upscale, ButtonAction::Upscale { index: i }) => *i == index,
        (ChangeKind::Variation, ButtonAction::Variation { index: i }) => *i == index,
        (ChangeKind::Reroll, ButtonAction::Reroll) => true,
        _ => false,
    };
    parent
        .buttons
        .0
        .iter()
        .filter_map(|b| CustomId::parse(&b.custom_id).ok())
        .find(|c| wanted(&c.action))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "task {} has no {kind:?} button{}",
                parent.mj_id,
                if index > 0 {
                    format!(" {index}")
                } else {
                    String::new()
                }
            ))
        })
}

/// `"<taskId> U2"`, `"<taskId> V1"`, `"<taskId> R"`.
fn parse_simple_change(content: &str) -> Result<(String, ChangeKind, u8), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "content must look like `<taskId> U1..U4`, `<taskId> V1..V4` or `<taskId> R`",
        )
    };
    let mut parts = content.split_whitespace();
    let (Some(task_id), Some(op), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let op = op.to_ascii_uppercase();
    let (kind, index) = match op.as_bytes() {
        [b'R'] => (ChangeKind::Reroll, 0),
        [b'U', d @ b'1'..=b'4'] => (ChangeKind::Upscale, d - b'0'),
        [b'V', d @ b'1'..=b'4'] => (ChangeKind::Variation, d - b'0'),
        _ => return Err(bad()),
    };
    Ok((task_id.to_string(), kind, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_change_forms() {
        let (id, kind, index) = parse_simple_change("1712205491372123 U2").unwrap();
        assert_eq!(
            (id.as_str(), kind, index),
            ("1712205491372123", ChangeKind::Upscale, 2)
        );
        assert_eq!(
            parse_simple_change(" 1 v4 ").unwrap().1,
            ChangeKind::Variation
        );
        assert_eq!(parse_simple_change("1 R").unwrap().1, ChangeKind::Reroll);
        for bad in ["", "1", "1 U5", "1 X1", "1 U1 extra", "1 U"] {
            assert!(parse_simple_change(bad).is_err(), "{bad}");
        }
    }
}
