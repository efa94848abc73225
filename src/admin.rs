//! Administrative operations, shared by the command line and (later) the admin API.

use crate::domain::prices::PriceRule;
use crate::domain::secrets::{
    hash_secret, key_hint, new_access_token, new_api_key, new_signing_secret,
};
use crate::domain::{BotType, Mode};
use crate::store::{
    ApiKey, ChannelChange, NewChannel, NewKey, NewUser, Role, Store, StoreError, StoreResult, User,
};

/// A user just created, with the access token shown this once.
pub struct CreatedUser {
    pub user: User,
    pub access_token: String,
}

pub async fn create_user(store: &dyn Store, name: &str, role: Role) -> StoreResult<CreatedUser> {
    let access_token = new_access_token();
    let user = store
        .create_user(&NewUser {
            name: name.to_string(),
            role,
            access_token_hash: Some(hash_secret(&access_token)),
        })
        .await?;
    Ok(CreatedUser { user, access_token })
}

/// The user called `name`, created (as a plain user) when missing.
pub async fn user_or_create(store: &dyn Store, name: &str) -> StoreResult<User> {
    if let Some(user) = store.user_by_name(name).await? {
        return Ok(user);
    }
    match create_user(store, name, Role::User).await {
        Ok(created) => Ok(created.user),
        // Created meanwhile by someone else.
        Err(StoreError::Conflict(_)) => store
            .user_by_name(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {name}"))),
        Err(e) => Err(e),
    }
}

/// A key just created, with its secret shown this once, and the secret its tasks'
/// notifications are signed with.
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
    pub hook_secret: String,
}

pub async fn create_key(
    store: &dyn Store,
    user: &User,
    quota_limit: Option<i64>,
    expires_at: Option<i64>,
) -> StoreResult<CreatedKey> {
    let secret = new_api_key();
    let hook_secret = new_signing_secret();
    let key = store
        .create_key(&NewKey {
            user_id: user.id,
            key_hash: hash_secret(&secret),
            key_hint: key_hint(&secret),
            expires_at,
            quota_limit,
            hook_secret: hook_secret.clone(),
        })
        .await?;
    Ok(CreatedKey {
        key,
        secret,
        hook_secret,
    })
}

/// Creates a user and gives them `quota` to start with (as a top-up in the ledger).
pub async fn create_user_with_quota(
    store: &dyn Store,
    name: &str,
    role: Role,
    quota: i64,
) -> StoreResult<CreatedUser> {
    let mut created = create_user(store, name, role).await?;
    if quota > 0 {
        created.user = store.top_up(created.user.id, quota).await?;
    }
    Ok(created)
}

/// User names: 1 to 64 letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_user_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "`{name}` is not a valid user name (letters, digits, . _ - @)"
        ))
    }
}

/// Checks a new channel's settings and spells its lists canonically.
pub fn check_channel(new: &mut NewChannel) -> Result<(), String> {
    if new.name.trim().is_empty() {
        return Err("name must not be empty".to_string());
    }
    check_base_url(&new.base_url)?;
    check_weight(new.weight)?;
    new.modes = canonical_list::<Mode>(&new.modes, "modes")?;
    new.bot_types = canonical_list::<BotType>(&new.bot_types, "bot_types")?;
    if new.max_in_flight.is_some_and(|cap| cap < 1) {
        return Err("max_in_flight must be at least 1".to_string());
    }
    Ok(())
}

/// Checks a change to a channel the same way; `max_in_flight` 0 removes the cap.
pub fn check_channel_change(change: &mut ChannelChange) -> Result<(), String> {
    if change.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err("name must not be empty".to_string());
    }
    if let Some(url) = &change.base_url {
        check_base_url(url)?;
    }
    if let Some(weight) = change.weight {
        check_weight(weight)?;
    }
    if let Some(modes) = &change.modes {
        change.modes = Some(canonical_list::<Mode>(modes, "modes")?);
    }
    if let Some(bots) = &change.bot_types {
        change.bot_types = Some(canonical_list::<BotType>(bots, "bot_types")?);
    }
    if change.max_in_flight.is_some_and(|cap| cap < 0) {
        return Err("max_in_flight must not be negative".to_string());
    }
    Ok(())
}

fn check_base_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("base_url is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("base_url must be http(s)".to_string());
    }
    Ok(())
}

fn check_weight(weight: i64) -> Result<(), String> {
    if weight < 1 {
        return Err("weight must be at least 1".to_string());
    }
    Ok(())
}

/// `fast, relax` → `FAST,RELAX`; an unknown word or an empty list is an error.
fn canonical_list<T>(text: &str, what: &str) -> Result<String, String>
where
    T: std::str::FromStr<Err = String> + std::fmt::Display,
{
    let words = text
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_uppercase().parse::<T>().map(|v| v.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if words.is_empty() {
        return Err(format!("{what} must name at least one value"));
    }
    Ok(words.join(","))
}

/// A price rule from its text form (`IMAGINE`, `TURBO` or none, a price).
pub fn price_rule(action: &str, mode: Option<&str>, price: i64) -> Result<PriceRule, String> {
    let action = action.trim().to_ascii_uppercase().parse()?;
    let mode = match mode.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Some(m.to_ascii_uppercase().parse()?),
        None => None,
    };
    if price < 0 {
        return Err("price must not be negative".to_string());
    }
    Ok(PriceRule {
        action,
        mode,
        price,
    })
}
