//! Refusals of the simulated submit routes: the upstream's codes and Chinese reasons, the
//! faults that answer HTTP 500 or hang, and the checks every route shares.

use super::draw;
use super::state::SimState;
use crate::domain::{BotType, Mode, data_url};
use crate::proto::{AccountFilter, SubmitResult, code};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use image::RgbImage;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The speed mode a route prefix (`/mj-fast`, ...) asks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteMode(pub Option<Mode>);

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

pub(super) fn refuse(code: i32, description: &str) -> Refusal {
    Refusal::Answer(Box::new(SubmitResult::new(code, description, Value::Null)))
}

pub(super) fn invalid(description: &str) -> Refusal {
    refuse(code::VALIDATION_ERROR, description)
}

pub(super) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal::BadJson(e.to_string()))
}

/// The fault switches: a hang waits until the simulator stops, a 500 creates nothing, a
/// delay slows the answer.
pub(super) async fn faults(state: &SimState, prompt: &str) -> Result<super::Faults, Refusal> {
    let faults = state.faults();
    let has = |word: &str| !word.is_empty() && prompt.contains(word);
    if faults.hang_all || has(&faults.hang_word) {
        state.shutdown.cancelled().await;
        return Err(Refusal::Stopped);
    }
    if faults.http500_all || has(&faults.http500_word) {
        return Err(Refusal::Http500);
    }
    if faults.submit_delay_ms > 0 {
        let delay = std::time::Duration::from_millis(faults.submit_delay_ms);
        tokio::select! {
            _ = state.shutdown.cancelled() => return Err(Refusal::Stopped),
            _ = tokio::time::sleep(delay) => {}
        }
    }
    Ok(faults)
}

pub(super) fn bot_type(value: Option<&str>) -> Result<BotType, Refusal> {
    value.map_or(Ok(BotType::MidJourney), |v| {
        v.parse().map_err(|_| invalid("botType参数错误"))
    })
}

/// Refuses a mode no account offers (code 3, as when no instance matches the filter).
pub(super) fn check_mode(
    state: &SimState,
    route: RouteMode,
    filter: Option<&AccountFilter>,
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

pub(super) fn check_banned(state: &SimState, prompt: &str) -> Result<(), Refusal> {
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

pub(super) fn required<'a>(value: &'a Option<String>, message: &str) -> Result<&'a str, Refusal> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(message))
}

pub(super) fn image(value: &str, message: &str) -> Result<(String, Vec<u8>, RgbImage), Refusal> {
    let url = data_url::decode(value, 30 * 1024 * 1024).map_err(|_| invalid(message))?;
    let image = draw::decode(&url.bytes).map_err(|_| invalid(message))?;
    Ok((url.mime, url.bytes, image))
}
