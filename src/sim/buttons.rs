//! The button routes of the simulator: `action`, the classic `change` and `simple-change`,
//! and `modal`, which completes a task waiting for its pop-up.

use super::draw;
use super::refusal::{Refusal, check_banned, faults, image, invalid, parse, refuse, required};
use super::render::{self, Job};
use super::state::SimState;
use super::submit::{Sim, start};
use super::task::NewTask;
use crate::domain::{ButtonAction, CustomId, TaskStatus};
use crate::proto::{ActionRequest, ChangeRequest, ModalRequest, SimpleChangeRequest, code};
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;

pub(super) async fn action(State(state): Sim, body: Bytes) -> Result<Response, Refusal> {
    let req: ActionRequest = parse(&body)?;
    let parent = required(&req.task_id, "taskId不能为空")?.to_string();
    let custom_id = required(&req.custom_id, "customId不能为空")?.to_string();
    act(&state, &parent, &custom_id, req.notify_hook, req.state).await
}

pub(super) async fn change(State(state): Sim, body: Bytes) -> Result<Response, Refusal> {
    let req: ChangeRequest = parse(&body)?;
    let parent = required(&req.task_id, "taskId不能为空")?.to_string();
    let index = req.index.unwrap_or(1);
    let button = classic_button(req.action.as_deref().unwrap_or_default(), index)?;
    let Some(hash) = state.with_task(&parent, |t| t.hash.clone()) else {
        return Err(refuse(code::NOT_FOUND, "关联任务不存在或已失效"));
    };
    act(
        &state,
        &parent,
        &CustomId::new(button, hash).to_string(),
        req.notify_hook,
        req.state,
    )
    .await
}

pub(super) async fn simple_change(State(state): Sim, body: Bytes) -> Result<Response, Refusal> {
    let req: SimpleChangeRequest = parse(&body)?;
    let content = required(&req.content, "content不能为空")?.to_string();
    let mut parts = content.split_whitespace();
    let (Some(parent), Some(word), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("content参数错误"));
    };
    let (kind, index) = word.split_at(1);
    let index = if kind.eq_ignore_ascii_case("R") {
        Ok(0)
    } else {
        index.parse()
    };
    let action = match kind.to_ascii_uppercase().as_str() {
        "U" => "UPSCALE",
        "V" => "VARIATION",
        "R" => "REROLL",
        _ => return Err(invalid("content参数错误")),
    };
    let button = index
        .map_err(|_| invalid("content参数错误"))
        .and_then(|i| classic_button(action, i))?;
    let Some(hash) = state.with_task(parent, |t| t.hash.clone()) else {
        return Err(refuse(code::NOT_FOUND, "关联任务不存在或已失效"));
    };
    act(
        &state,
        parent,
        &CustomId::new(button, hash).to_string(),
        req.notify_hook,
        req.state,
    )
    .await
}

fn classic_button(action: &str, index: i64) -> Result<ButtonAction, Refusal> {
    let index = u8::try_from(index).ok().filter(|i| (1..=4).contains(i));
    match (action, index) {
        ("REROLL", _) => Ok(ButtonAction::Reroll),
        ("UPSCALE", Some(index)) => Ok(ButtonAction::Upscale { index }),
        ("VARIATION", Some(index)) => Ok(ButtonAction::Variation { index }),
        ("UPSCALE" | "VARIATION", None) => Err(invalid("index参数错误")),
        _ => Err(invalid("action参数错误")),
    }
}

/// Presses a button of a finished task: exactly the buttons that task shows.
async fn act(
    state: &Arc<SimState>,
    parent_id: &str,
    custom_id: &str,
    hook: Option<String>,
    st: Option<String>,
) -> Result<Response, Refusal> {
    let faults = faults(state, "").await?;
    let parent = state.with_task(parent_id, |t| {
        let has_button = t.buttons.iter().any(|b| b.custom_id == custom_id);
        (
            t.status,
            has_button,
            t.prompt.clone(),
            t.seed,
            t.account,
            t.bot_type,
        )
    });
    let Some((status, has_button, prompt, seed, account, bot)) = parent else {
        return Err(refuse(code::NOT_FOUND, "关联任务不存在或已失效"));
    };
    if status != TaskStatus::Success {
        return Err(invalid("关联任务状态错误"));
    }
    if !has_button {
        return Err(invalid("customId参数错误"));
    }
    let Ok(button) = CustomId::parse(custom_id) else {
        return Err(invalid("customId参数错误"));
    };
    let source = || {
        state
            .task_image(parent_id)
            .ok_or_else(|| refuse(code::NOT_FOUND, "关联任务不存在或已失效"))
    };
    let mut child_prompt = prompt.clone();
    let mut child_seed = rand::random();
    let job = match &button.action {
        ButtonAction::Upscale { index } => {
            child_seed = seed;
            Job::Upscale {
                grid: source()?,
                index: *index,
            }
        }
        ButtonAction::Variation { index } => Job::Vary {
            source: source()?,
            quadrant: Some(*index),
            strength: 0.35,
        },
        ButtonAction::Reroll => Job::Grid { refs: Vec::new() },
        ButtonAction::VarySubtle => Job::Vary {
            source: source()?,
            quadrant: None,
            strength: 0.15,
        },
        ButtonAction::VaryStrong => Job::Vary {
            source: source()?,
            quadrant: None,
            strength: 0.45,
        },
        ButtonAction::UpscaleAgain { .. } => Job::Enlarge { source: source()? },
        ButtonAction::ZoomOut { percent } => Job::Zoom {
            source: source()?,
            factor: 100.0 / f32::from(*percent),
        },
        ButtonAction::Pan { direction } => Job::Pan {
            source: source()?,
            direction: *direction,
        },
        ButtonAction::PicReaderRetry => {
            let bytes = source()?;
            let url = state
                .with_task(parent_id, |t| t.image_url.clone())
                .flatten()
                .unwrap_or_default();
            child_prompt = String::new();
            Job::Describe {
                image: draw::decode(&bytes).ok(),
                url,
            }
        }
        ButtonAction::PicReader { index } => {
            child_prompt = nth_prompt(&prompt, *index);
            Job::Pending {
                action: button.action.clone(),
                source: None,
                text: child_prompt.clone(),
            }
        }
        ButtonAction::CustomZoom | ButtonAction::VaryRegion => Job::Pending {
            action: button.action.clone(),
            source: Some(source()?),
            text: prompt.clone(),
        },
    };
    let new = NewTask {
        action: button.action.task_action(),
        bot_type: bot,
        prompt: child_prompt,
        description: format!(
            "/{} {parent_id} {custom_id}",
            button.action.task_action().as_str().to_lowercase()
        ),
        state: st,
        notify_hook: hook,
        seed: child_seed,
        modal: button.action.needs_modal(),
        job,
        account: Some(account),
    };
    Ok(start(state.clone(), state.admit(new, &faults)))
}

/// Completes the pop-up of a task in `MODAL`.
pub(super) async fn modal(State(state): Sim, body: Bytes) -> Result<Response, Refusal> {
    let req: ModalRequest = parse(&body)?;
    let id = required(&req.task_id, "taskId不能为空")?.to_string();
    let prompt = req.prompt.clone().filter(|p| !p.trim().is_empty());
    faults(&state, prompt.as_deref().unwrap_or_default()).await?;
    let pending = state.with_task(&id, |t| match (&t.job, t.status) {
        (
            Some(Job::Pending {
                action,
                source,
                text,
            }),
            TaskStatus::Modal,
        ) => Some((action.clone(), source.clone(), text.clone())),
        _ => None,
    });
    let (action, source, text) = match pending {
        None => return Err(refuse(code::NOT_FOUND, "关联任务不存在或已失效")),
        Some(None) => return Err(invalid("任务状态错误")),
        Some(Some(pending)) => pending,
    };
    if let Some(prompt) = &prompt {
        check_banned(&state, prompt)?;
    }
    let mask = match req.mask_base64.as_deref().filter(|m| !m.is_empty()) {
        Some(mask) => Some(image(mask, "maskBase64格式错误")?.2),
        None => None,
    };
    let zoom = prompt.as_deref().and_then(zoom_factor).unwrap_or(2.0);
    let job = render::confirm(&action, source, mask, zoom).map_err(invalid)?;
    let final_prompt = match action {
        ButtonAction::PicReader { .. } => Some(prompt.unwrap_or(text)),
        _ => prompt,
    };
    Ok(start(
        state.clone(),
        state.confirm_modal(&id, final_prompt, job),
    ))
}

/// `--zoom 1.8` in a Custom Zoom prompt.
fn zoom_factor(prompt: &str) -> Option<f32> {
    let mut words = prompt.split_whitespace();
    words.find(|w| *w == "--zoom")?;
    words.next()?.parse().ok()
}

/// The `index`th of describe's four prompts, without its number.
fn nth_prompt(text: &str, index: u8) -> String {
    let line = text
        .split("\n\n")
        .nth(usize::from(index) - 1)
        .unwrap_or(text);
    line.split_once(' ')
        .map_or(line, |(_, rest)| rest)
        .to_string()
}
