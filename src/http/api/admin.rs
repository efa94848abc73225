//! Admin endpoints: users, top-ups, keys, channels and prices.

use super::auth::Admin;
use super::{Data, ManageError};
use crate::admin;
use crate::domain::prices::{PriceRule, default_price};
use crate::domain::{Mode, TaskAction};
use crate::http::extract::ApiJson;
use crate::state::AppState;
use crate::store::{ApiKey, Role, User};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Serialize)]
pub struct UserOut {
    id: i64,
    name: String,
    role: &'static str,
    balance: i64,
    enabled: bool,
    created_at: i64,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            name: u.name,
            role: u.role.as_str(),
            balance: u.balance,
            enabled: u.enabled,
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize)]
pub struct KeyOut {
    id: i64,
    user_id: i64,
    hint: String,
    enabled: bool,
    expires_at: Option<i64>,
    quota_limit: Option<i64>,
    quota_used: i64,
}

impl From<ApiKey> for KeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            user_id: k.user_id,
            hint: k.key_hint,
            enabled: k.enabled,
            expires_at: k.expires_at,
            quota_limit: k.quota_limit,
            quota_used: k.quota_used,
        }
    }
}

pub(super) fn bad(e: impl std::fmt::Display) -> ManageError {
    ManageError::BadRequest(e.to_string())
}

pub async fn list_users(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Data<Vec<UserOut>>, ManageError> {
    let users = state.store.list_users().await?;
    Ok(Data(users.into_iter().map(UserOut::from).collect()))
}

#[derive(Deserialize)]
pub struct CreateUserIn {
    name: String,
    #[serde(default)]
    quota: i64,
    #[serde(default)]
    admin: bool,
}

pub async fn create_user(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(input): ApiJson<CreateUserIn>,
) -> Result<Data<Value>, ManageError> {
    let name = admin::valid_user_name(&input.name).map_err(bad)?;
    if input.quota < 0 {
        return Err(bad("quota must not be negative"));
    }
    let role = if input.admin { Role::Admin } else { Role::User };
    let created = admin::create_user_with_quota(&*state.store, name, role, input.quota).await?;
    Ok(Data(
        json!({"id": created.user.id, "name": created.user.name, "access_token": created.access_token}),
    ))
}

#[derive(Deserialize)]
pub struct TopUpIn {
    amount: i64,
}

pub async fn top_up(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    ApiJson(input): ApiJson<TopUpIn>,
) -> Result<Data<UserOut>, ManageError> {
    if input.amount <= 0 {
        return Err(bad("amount must be positive"));
    }
    Ok(Data(state.store.top_up(id, input.amount).await?.into()))
}

pub async fn enable_user(
    state: State<AppState>,
    admin: Admin,
    id: Path<i64>,
) -> Result<Data<UserOut>, ManageError> {
    set_user_enabled(state, admin, id, true).await
}

pub async fn disable_user(
    state: State<AppState>,
    admin: Admin,
    id: Path<i64>,
) -> Result<Data<UserOut>, ManageError> {
    set_user_enabled(state, admin, id, false).await
}

async fn set_user_enabled(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    enabled: bool,
) -> Result<Data<UserOut>, ManageError> {
    let user = state.store.set_user_enabled(id, enabled).await?;
    user.map(|u| Data(u.into()))
        .ok_or_else(|| ManageError::NotFound(format!("user {id} not found")))
}

#[derive(Deserialize)]
pub struct KeyQuery {
    user_id: Option<i64>,
}

pub async fn list_keys(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<KeyQuery>,
) -> Result<Data<Vec<KeyOut>>, ManageError> {
    let keys = state.store.list_keys(q.user_id).await?;
    Ok(Data(keys.into_iter().map(KeyOut::from).collect()))
}

#[derive(Deserialize)]
pub struct CreateKeyIn {
    user_id: i64,
    limit: Option<i64>,
    /// Unix seconds or milliseconds.
    expires_at: Option<i64>,
}

pub async fn create_key(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(input): ApiJson<CreateKeyIn>,
) -> Result<Data<Value>, ManageError> {
    if input.limit.is_some_and(|l| l < 0) {
        return Err(bad("limit must not be negative"));
    }
    let user = state
        .store
        .user(input.user_id)
        .await?
        .ok_or_else(|| ManageError::NotFound(format!("user {} not found", input.user_id)))?;
    let expires_at = input
        .expires_at
        .map(|t| if t > 100_000_000_000 { t } else { t * 1000 });
    let created = admin::create_key(&*state.store, &user, input.limit, expires_at).await?;
    Ok(Data(
        json!({"id": created.key.id, "key": created.secret, "hook_secret": created.hook_secret}),
    ))
}

pub async fn enable_key(
    state: State<AppState>,
    admin: Admin,
    id: Path<i64>,
) -> Result<Data<KeyOut>, ManageError> {
    set_key_enabled(state, admin, id, true).await
}

pub async fn disable_key(
    state: State<AppState>,
    admin: Admin,
    id: Path<i64>,
) -> Result<Data<KeyOut>, ManageError> {
    set_key_enabled(state, admin, id, false).await
}

async fn set_key_enabled(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
    enabled: bool,
) -> Result<Data<KeyOut>, ManageError> {
    let key = state.store.set_key_enabled(id, enabled).await?;
    key.map(|k| Data(k.into()))
        .ok_or_else(|| ManageError::NotFound(format!("key {id} not found")))
}

#[derive(Serialize)]
pub struct PriceOut {
    action: TaskAction,
    mode: Option<Mode>,
    price: i64,
    default: i64,
}

pub async fn list_prices(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Data<Vec<PriceOut>>, ManageError> {
    let rules = state.store.list_prices().await?;
    Ok(Data(
        rules
            .into_iter()
            .map(|r| PriceOut {
                action: r.action,
                mode: r.mode,
                price: r.price,
                default: default_price(r.action),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct SetPriceIn {
    action: String,
    mode: Option<String>,
    price: i64,
}

pub async fn set_price(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(input): ApiJson<SetPriceIn>,
) -> Result<Data<Value>, ManageError> {
    let rule = admin::price_rule(&input.action, input.mode.as_deref(), input.price).map_err(bad)?;
    state.store.set_price(&rule).await?;
    let PriceRule {
        action,
        mode,
        price,
    } = rule;
    Ok(Data(
        json!({"action": action, "mode": mode, "price": price}),
    ))
}
