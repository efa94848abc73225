//! The routes that create tasks (imagine, blend, describe, shorten, swap face) and upload:
//! each reads its body the way midjourney-proxy does, refuses with the upstream's codes and
//! Chinese reasons, and hands a task to the state.

use super::refusal::{
    Refusal, RouteMode, bot_type, check_banned, check_mode, faults, image, invalid, parse, required,
};
use super::render::Job;
use super::runner;
use super::state::SimState;
use super::task::NewTask;
use crate::domain::{BotType, Dimensions, TaskAction};
use crate::proto::{
    BlendRequest, DescribeRequest, ImagineRequest, ShortenRequest, SubmitResult, SwapFaceRequest,
    UploadRequest, code,
};
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub(super) type Sim = State<Arc<SimState>>;

pub(super) fn seed_of(text: &str) -> u32 {
    let digest = Sha256::digest(text.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

pub(super) fn start(
    state: Arc<SimState>,
    (result, run): (SubmitResult, Option<String>),
) -> Response {
    if let Some(id) = run {
        runner::spawn(state, id);
    }
    Json(result).into_response()
}

pub(super) fn task(action: TaskAction, prompt: String, description: String, job: Job) -> NewTask {
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

pub(super) fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "png",
    }
}

pub(super) fn content_type(mime: &str) -> &'static str {
    match extension(mime) {
        "jpg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "image/png",
    }
}
