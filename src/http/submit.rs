//! The routes that create tasks (imagine, blend, describe, shorten, swap face) and upload:
//! validate the client's body, then hand a [`Submission`] to the relay.

use super::error::{ApiError, Envelope, code};
use super::extract::{ApiJson, Caller, RouteMode};
use super::validate;
use crate::domain::{BotType, Mode, TaskAction};
use crate::proto::{
    AccountFilter, BlendRequest, DescribeRequest, ImagineRequest, ShortenRequest, SwapFaceRequest,
    UploadRequest,
};
use crate::relay::{Submission, submit_task};
use crate::state::AppState;
use axum::extract::State;
use serde_json::{Map, Value, json};

/// Fields every submission shares.
pub(super) struct Common {
    bot_type: BotType,
    mode: Option<Mode>,
    notify_hook: Option<String>,
    state: Option<String>,
    account_filter: Map<String, Value>,
}

impl Common {
    pub(super) async fn read(
        app: &AppState,
        route: RouteMode,
        bot_type: Option<&str>,
        filter: Option<AccountFilter>,
        notify_hook: Option<String>,
        state: Option<String>,
    ) -> Result<Self, ApiError> {
        let notify_hook = validate::notify_hook(notify_hook)?;
        if let Some(hook) = &notify_hook {
            validate::notify_hook_address(hook, app.config.allow_private_hooks).await?;
        }
        Ok(Self {
            bot_type: validate::bot_type(bot_type)?,
            mode: validate::mode(route.0, filter.as_ref())?,
            notify_hook,
            state: validate::state(state)?,
            account_filter: filter.map(|f| f.other).unwrap_or_default(),
        })
    }

    pub(super) fn submission(
        self,
        action: TaskAction,
        path: &'static str,
        body: Value,
        prompt: String,
        description: String,
    ) -> Submission {
        Submission {
            action,
            path,
            body,
            prompt,
            description,
            state: self.state,
            bot_type: self.bot_type,
            mode: self.mode,
            notify_hook: self.notify_hook,
            account_filter: self.account_filter,
            parent: None,
            custom_id: None,
            expects_modal: false,
        }
    }
}

fn images(field: &str, list: &[String], min: usize, max: usize) -> Result<(), ApiError> {
    if list.len() < min || list.len() > max {
        return Err(ApiError::bad_request(if min == max {
            format!("{field} must hold {min} images")
        } else {
            format!(
                "{field} must hold {min} to {max} images, not {}",
                list.len()
            )
        }));
    }
    for (i, image) in list.iter().enumerate() {
        validate::image_data_url(&format!("{field}[{i}]"), image)?;
    }
    Ok(())
}

pub async fn imagine(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<ImagineRequest>,
) -> Result<Envelope, ApiError> {
    let prompt = validate::prompt("prompt", req.prompt.as_deref())?;
    images("base64Array", &req.base64_array, 0, 5)?;
    let common = Common::read(
        &state,
        route,
        req.bot_type.as_deref(),
        req.account_filter,
        req.notify_hook,
        req.state,
    )
    .await?;
    let body = json!({
        "prompt": prompt,
        "botType": common.bot_type,
        "base64Array": req.base64_array,
    });
    let description = format!("/imagine {prompt}");
    let sub = common.submission(
        TaskAction::Imagine,
        "/submit/imagine",
        body,
        prompt,
        description,
    );
    submit_task(&state, &caller, sub).await
}

pub async fn blend(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<BlendRequest>,
) -> Result<Envelope, ApiError> {
    images("base64Array", &req.base64_array, 2, 5)?;
    let dimensions = validate::dimensions(req.dimensions.as_deref())?;
    let common = Common::read(
        &state,
        route,
        req.bot_type.as_deref(),
        req.account_filter,
        req.notify_hook,
        req.state,
    )
    .await?;
    let body = json!({
        "base64Array": req.base64_array,
        "dimensions": dimensions,
        "botType": common.bot_type,
    });
    let sub = common.submission(
        TaskAction::Blend,
        "/submit/blend",
        body,
        String::new(),
        "/blend".to_string(),
    );
    submit_task(&state, &caller, sub).await
}

pub async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<DescribeRequest>,
) -> Result<Envelope, ApiError> {
    let body = match (
        req.base64.as_deref().filter(|s| !s.is_empty()),
        req.link.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(image), _) => {
            validate::image_data_url("base64", image)?;
            json!({ "base64": image })
        }
        (None, Some(link)) => json!({ "link": validate::http_url("link", link)?.to_string() }),
        (None, None) => return Err(ApiError::bad_request("base64 or link is required")),
    };
    let common = Common::read(
        &state,
        route,
        req.bot_type.as_deref(),
        req.account_filter,
        req.notify_hook,
        req.state,
    )
    .await?;
    let mut body = body;
    body["botType"] = json!(common.bot_type);
    let sub = common.submission(
        TaskAction::Describe,
        "/submit/describe",
        body,
        String::new(),
        "/describe".to_string(),
    );
    submit_task(&state, &caller, sub).await
}

pub async fn shorten(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<ShortenRequest>,
) -> Result<Envelope, ApiError> {
    let prompt = validate::prompt("prompt", req.prompt.as_deref())?;
    let common = Common::read(
        &state,
        route,
        req.bot_type.as_deref(),
        req.account_filter,
        req.notify_hook,
        req.state,
    )
    .await?;
    let body = json!({ "prompt": prompt, "botType": common.bot_type });
    let description = format!("/shorten {prompt}");
    let sub = common.submission(
        TaskAction::Shorten,
        "/submit/shorten",
        body,
        prompt,
        description,
    );
    submit_task(&state, &caller, sub).await
}

pub async fn swap_face(
    State(state): State<AppState>,
    caller: Caller,
    route: RouteMode,
    ApiJson(req): ApiJson<SwapFaceRequest>,
) -> Result<Envelope, ApiError> {
    let source = req.source_base64.unwrap_or_default();
    let target = req.target_base64.unwrap_or_default();
    validate::image_data_url("sourceBase64", &source)?;
    validate::image_data_url("targetBase64", &target)?;
    let common = Common::read(
        &state,
        route,
        None,
        req.account_filter,
        req.notify_hook,
        req.state,
    )
    .await?;
    let body = json!({ "sourceBase64": source, "targetBase64": target });
    let sub = common.submission(
        TaskAction::SwapFace,
        "/insight-face/swap",
        body,
        String::new(),
        "/swap".to_string(),
    );
    submit_task(&state, &caller, sub).await
}

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<UploadRequest>,
) -> Result<Envelope, ApiError> {
    images("base64Array", &req.base64_array, 1, 10)?;
    let urls = crate::relay::upload::upload_images(&state, &caller, &req.base64_array).await?;
    Ok(Envelope::new(code::SUCCESS, "Success", urls))
}
