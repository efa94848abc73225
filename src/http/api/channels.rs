//! Admin endpoints for channels: create, change, enable or disable, and list with each
//! channel's health and in-flight count.

use super::admin::bad;
use super::auth::Admin;
use super::{Data, ManageError};
use crate::admin;
use crate::http::extract::ApiJson;
use crate::relay::routing::HealthView;
use crate::state::AppState;
use crate::store::{Channel, ChannelChange};
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

/// A channel as admins see it; its secret is never shown back.
#[derive(Serialize)]
pub struct ChannelOut {
    id: i64,
    name: String,
    base_url: String,
    enabled: bool,
    priority: i64,
    weight: i64,
    modes: String,
    bot_types: String,
    max_in_flight: Option<i64>,
    pass_account_filter: bool,
    is_local: bool,
    /// Whether it is given the gateway's callback URL as each task's `notifyHook`.
    callbacks: bool,
    /// Unfinished tasks on it now.
    in_flight: i64,
    health: HealthView,
}

impl ChannelOut {
    fn new(c: Channel, in_flight: i64, health: HealthView) -> Self {
        Self {
            id: c.id,
            name: c.name,
            base_url: c.base_url,
            enabled: c.enabled,
            priority: c.priority,
            weight: c.weight,
            modes: c.modes,
            bot_types: c.bot_types,
            max_in_flight: c.max_in_flight,
            pass_account_filter: c.pass_account_filter,
            is_local: c.is_local,
            callbacks: c.callbacks,
            in_flight,
            health,
        }
    }
}

async fn out(state: &AppState, channel: Channel) -> Result<ChannelOut, ManageError> {
    let in_flight = state.store.in_flight_by_channel().await?;
    let count = in_flight.get(&channel.id).copied().unwrap_or(0);
    let health = state.health.view(channel.id);
    Ok(ChannelOut::new(channel, count, health))
}

pub async fn list_channels(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Data<Vec<ChannelOut>>, ManageError> {
    let channels = state.store.list_channels().await?;
    let in_flight = state.store.in_flight_by_channel().await?;
    Ok(Data(
        channels
            .into_iter()
            .map(|c| {
                let count = in_flight.get(&c.id).copied().unwrap_or(0);
                let health = state.health.view(c.id);
                ChannelOut::new(c, count, health)
            })
            .collect(),
    ))
}

/// Settings of a channel; absent fields keep their default (create) or value (update).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelIn {
    name: Option<String>,
    base_url: Option<String>,
    secret: Option<String>,
    enabled: Option<bool>,
    priority: Option<i64>,
    weight: Option<i64>,
    modes: Option<String>,
    bot_types: Option<String>,
    max_in_flight: Option<i64>,
    pass_account_filter: Option<bool>,
    #[serde(alias = "local")]
    is_local: Option<bool>,
    callbacks: Option<bool>,
}

impl From<ChannelIn> for ChannelChange {
    fn from(input: ChannelIn) -> Self {
        ChannelChange {
            name: input.name,
            base_url: input.base_url,
            secret: input.secret,
            enabled: input.enabled,
            priority: input.priority,
            weight: input.weight,
            modes: input.modes,
            bot_types: input.bot_types,
            max_in_flight: input.max_in_flight,
            pass_account_filter: input.pass_account_filter,
            is_local: input.is_local,
            callbacks: input.callbacks,
        }
    }
}

pub async fn create_channel(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(input): ApiJson<ChannelIn>,
) -> Result<Data<ChannelOut>, ManageError> {
    let disabled = input.enabled == Some(false);
    let mut new = ChannelChange::from(input).into_new();
    admin::check_channel(&mut new).map_err(bad)?;
    let mut channel = state.store.create_channel(&new).await?;
    if disabled {
        channel = change(
            &state,
            channel.id,
            ChannelChange {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(Data(out(&state, channel).await?))
}

pub async fn update_channel(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<ChannelIn>,
) -> Result<Data<ChannelOut>, ManageError> {
    let channel = change(&state, id, input.into()).await?;
    Ok(Data(out(&state, channel).await?))
}

pub async fn enable_channel(
    state: State<AppState>,
    admin: Admin,
    id: Path<i64>,
) -> Result<Data<ChannelOut>, ManageError> {
    set_enabled(state, admin, id, true).await
}

pub async fn disable_channel(
    state: State<AppState>,
    admin: Admin,
    id: Path<i64>,
) -> Result<Data<ChannelOut>, ManageError> {
    set_enabled(state, admin, id, false).await
}

async fn set_enabled(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    enabled: bool,
) -> Result<Data<ChannelOut>, ManageError> {
    let channel = change(
        &state,
        id,
        ChannelChange {
            enabled: Some(enabled),
            ..Default::default()
        },
    )
    .await?;
    Ok(Data(out(&state, channel).await?))
}

async fn change(
    state: &AppState,
    id: i64,
    mut change: ChannelChange,
) -> Result<Channel, ManageError> {
    admin::check_channel_change(&mut change).map_err(bad)?;
    state
        .store
        .update_channel(id, &change)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("channel {id} not found")))
}
