//! The submit routes: each reads its body the way midjourney-proxy does, refuses with the
//! upstream's codes and Chinese reasons, and hands a task to the state.

use super::draw;
use super::render::{self, Job};
use super::runner;
use super::state::{NewTask, SimState};
use crate::domain::{
    BotType, ButtonAction, CustomId, Dimensions, Mode, TaskAction, TaskStatus, data_url,
};
use crate::proto::{
    ActionRequest, BlendRequest, ChangeRequest, DescribeRequest, ImagineRequest, ModalRequest,
    ShortenRequest, SimpleChangeRequest, SubmitResult, SwapFaceRequest, UploadRequest, code,
};
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use image::RgbImage;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The speed mode a route prefix (`/mj-fast`, ...) asks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteMode(pub Option<Mode>);

type Sim = State<Arc<SimState>>;

/// Why a submit creates nothing: an answer in the protocol's envelope, or a fault.
pub(super) enum Refusal {
    Answer(Box<SubmitResult>),
    /// Spring's 400 for a body that is not the JSON it expects.
    BadJson(String),
    Http500,
    /// The simulator stopped while a request hung.
    Stopped,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Answer(result) => Json(*result).into_response(),
            Refusal::BadJson(message) => {
                let body = json!({"status": 400, "error": "Bad Request", "message": message});
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            Refusal::Http500 => {
                let body = json!({"status": 500, "error": "Internal Server Error"});
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
            Refusal::Stopped => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
}

fn refuse(code: i32, description: &str) -> Refusal {
    Refusal::Answer(Box::new(SubmitResult::new(code, description, Value::Null)))
}

fn invalid(description: &str) -> Refusal {
    refuse(code::VALIDATION_ERROR, description)
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal::BadJson(e.to_string()))
}

/// The fault switches: a hang waits until the simulator stops, a 500 creates nothing.
async fn faults(state: &SimState, prompt: &str) -> Result<super::Faults, Refusal> {
    let faults = state.faults();
    let has = |word: &str| !word.is_empty() && prompt.contains(word);
    if faults.hang_all || has(&faults.hang_word) {
        state.shutdown.cancelled().await;
        return Err(Refusal::Stopped);
    }
    if faults.http500_all || has(&faults.http500_word) {
        return Err(Refusal::Http500);
    }
    Ok(faults)
}

fn bot_type(value: Option<&str>) -> Result<BotType, Refusal> {
    value.map_or(Ok(BotType::MidJourney), |v| {
        v.parse().map_err(|_| invalid("botType参数错误"))
    })
}

/// Refuses a mode no account offers (code 3, as when no instance matches the filter).
fn check_mode(
    state: &SimState,
    route: RouteMode,
    filter: Option<&crate::proto::AccountFilter>,
) -> Result<(), Refusal> {
    let mut modes: Vec<Mode> = route.0.into_iter().collect();
    for m in filter.map(|f| f.modes.as_slice()).unwrap_or_default() {
        modes.push(
            m.to_ascii_uppercase()
                .parse()
                .map_err(|_| invalid("modes参数错误"))?,
        );
    }
    if state.offers(&modes) {
        Ok(())
    } else {
        Err(refuse(code::NOT_FOUND, "无可用的账号实例"))
    }
}

fn check_banned(state: &SimState, prompt: &str) -> Result<(), Refusal> {
    let lower = prompt.to_lowercase();
    match state
        .config
        .banned_words
        .iter()
        .find(|w| !w.is_empty() && lower.contains(&w.to_lowercase()))
    {
        Some(word) => Err(Refusal::Answer(Box::new(
            SubmitResult::new(code::BANNED_PROMPT, "可能包含敏感词", Value::Null)
                .with_property("promptEn", prompt)
                .with_property("bannedWord", word.as_str()),
        ))),
        None => Ok(()),
    }
}

fn required<'a>(value: &'a Option<String>, message: &str) -> Result<&'a str, Refusal> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(message))
}

fn image(value: &str, message: &str) -> Result<(String, Vec<u8>, RgbImage), Refusal> {
    let url = data_url::decode(value, 30 * 1024 * 1024).map_err(|_| invalid(message))?;
    let image = draw::decode(&url.bytes).map_err(|_| invalid(message))?;
    Ok((url.mime, url.bytes, image))
}

fn seed_of(text: &str) -> u32 {
    let digest = Sha256::digest(text.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn start(state: Arc<SimState>, (result, run): (SubmitResult, Option<String>)) -> Response {
    if let Some(id) = run {
        runner::spawn(state, id);
    }
    Json(result).into_response()
}

fn task(action: TaskAction, prompt: String, description: String, job: Job) -> NewTask {
    NewTask {
        action,
        bot_type: BotType::MidJourney,
        seed: seed_of(&prompt),
        prompt,
        description,
        state: None,
        notify_hook: None,
        job,
        account: None,
        modal: false,
    }
}

pub(super) async fn imagine(
    State(state): Sim,
    Extension(route): Extension<RouteMode>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let req: ImagineRequest = parse(&body)?;
    let prompt = required(&req.prompt, "prompt不能为空")?.to_string();
    let faults = faults(&state, &prompt).await?;
    let bot = bot_type(req.bot_type.as_deref())?;
    check_mode(&state, route, req.account_filter.as_ref())?;
    check_banned(&state, &prompt)?;
    let mut refs = Vec::new();
    for item in &req.base64_array {
        refs.push(image(item, "base64格式错误")?.2);
    }
    let mut new = task(
        TaskAction::Imagine,
        prompt.clone(),
        format!("/imagine {prompt}"),
        Job::Grid { refs },
    );
    new.bot_type = bot;
    new.seed = seed_of(&format!("{bot}:{prompt}"));
    (new.state, new.notify_hook) = (req.state, req.notify_hook);
    Ok(start(state.clone(), state.admit(new, &faults)))
}

pub(super) async fn blend(
    State(state): Sim,
    Extension(route): Extension<RouteMode>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let req: BlendRequest = parse(&body)?;
    let faults = faults(&state, "").await?;
    if !(2..=5).contains(&req.base64_array.len()) {
        return Err(invalid("base64List参数错误"));
    }
    let dimensions: Dimensions = req
        .dimensions
        .as_deref()
        .map_or(Ok(Dimensions::Square), |d| {
            d.parse().map_err(|_| invalid("dimensions参数错误"))
        })?;
    let bot = bot_type(req.bot_type.as_deref())?;
    check_mode(&state, route, req.account_filter.as_ref())?;
    let mut images = Vec::new();
    for item in &req.base64_array {
        images.push(image(item, "base64格式错误")?.2);
    }
    let mut new = task(
        TaskAction::Blend,
        String::new(),
        "/blend".to_string(),
        Job::Blend { images, dimensions },
    );
    new.bot_type = bot;
    new.seed = rand::random();
    (new.state, new.notify_hook) = (req.state, req.notify_hook);
    Ok(start(state.clone(), state.admit(new, &faults)))
}

pub(super) async fn describe(
    State(state): Sim,
    Extension(route): Extension<RouteMode>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let req: DescribeRequest = parse(&body)?;
    let faults = faults(&state, "").await?;
    let bot = bot_type(req.bot_type.as_deref())?;
    check_mode(&state, route, req.account_filter.as_ref())?;
    let job = match (
        req.base64.as_deref().filter(|b| !b.is_empty()),
        req.link.as_deref(),
    ) {
        (Some(base64), _) => {
            let (mime, bytes, image) = image(base64, "base64格式错误")?;
            let name = format!("{}.{}", uuid::Uuid::new_v4(), extension(&mime));
            let url = state.put_file("describe", name, content_type(&mime), Bytes::from(bytes));
            Job::Describe {
                image: Some(image),
                url,
            }
        }
        (None, Some(link)) if link.starts_with("http://") || link.starts_with("https://") => {
            Job::Describe {
                image: None,
                url: link.to_string(),
            }
        }
        (None, Some(_)) => return Err(invalid("link参数错误")),
        (None, None) => return Err(invalid("base64不能为空")),
    };
    let mut new = task(
        TaskAction::Describe,
        String::new(),
        "/describe".to_string(),
        job,
    );
    new.bot_type = bot;
    (new.state, new.notify_hook) = (req.state, req.notify_hook);
    Ok(start(state.clone(), state.admit(new, &faults)))
}

pub(super) async fn shorten(
    State(state): Sim,
    Extension(route): Extension<RouteMode>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let req: ShortenRequest = parse(&body)?;
    let prompt = required(&req.prompt, "prompt不能为空")?.to_string();
    let faults = faults(&state, &prompt).await?;
    let bot = bot_type(req.bot_type.as_deref())?;
    check_mode(&state, route, req.account_filter.as_ref())?;
    check_banned(&state, &prompt)?;
    let mut new = task(
        TaskAction::Shorten,
        prompt.clone(),
        format!("/shorten {prompt}"),
        Job::Shorten,
    );
    new.bot_type = bot;
    (new.state, new.notify_hook) = (req.state, req.notify_hook);
    Ok(start(state.clone(), state.admit(new, &faults)))
}

pub(super) async fn swap_face(
    State(state): Sim,
    Extension(route): Extension<RouteMode>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let req: SwapFaceRequest = parse(&body)?;
    let faults = faults(&state, "").await?;
    let source = image(
        required(&req.source_base64, "sourceBase64不能为空")?,
        "sourceBase64格式错误",
    )?
    .2;
    let target = image(
        required(&req.target_base64, "targetBase64不能为空")?,
        "targetBase64格式错误",
    )?
    .2;
    check_mode(&state, route, req.account_filter.as_ref())?;
    let job = Job::SwapFace { source, target };
    let mut new = task(
        TaskAction::SwapFace,
        String::new(),
        "/swap".to_string(),
        job,
    );
    (new.state, new.notify_hook) = (req.state, req.notify_hook);
    Ok(start(state.clone(), state.admit(new, &faults)))
}

pub(super) async fn upload(State(state): Sim, body: Bytes) -> Result<Response, Refusal> {
    let req: UploadRequest = parse(&body)?;
    faults(&state, "").await?;
    if req.base64_array.is_empty() {
        return Err(invalid("base64Array不能为空"));
    }
    let mut files = Vec::new();
    for item in &req.base64_array {
        let (mime, bytes, _) = image(item, "base64格式错误")?;
        files.push((mime, bytes));
    }
    let urls: Vec<Value> = files
        .into_iter()
        .map(|(mime, bytes)| {
            let name = format!("{}.{}", uuid::Uuid::new_v4(), extension(&mime));
            Value::String(state.put_file("upload", name, content_type(&mime), Bytes::from(bytes)))
        })
        .collect();
    Ok(Json(SubmitResult::new(code::SUCCESS, "上传成功", urls)).into_response())
}

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

fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "png",
    }
}

fn content_type(mime: &str) -> &'static str {
    match extension(mime) {
        "jpg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "image/png",
    }
}
