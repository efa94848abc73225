//! `mjgate user` and `mjgate key`: users, balances and API keys on the configured database.

use super::Output;
use crate::admin;
use crate::store::{Role, Store, User};
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub(super) enum UserCommand {
    /// Create a user; prints its id and access token (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Starting balance in quota units.
        #[arg(long, default_value_t = 0)]
        quota: i64,
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        out: Output,
    },
    /// List users and balances.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Add quota to a user's balance.
    Topup {
        #[arg(long)]
        name: String,
        #[arg(long)]
        amount: i64,
        #[command(flatten)]
        out: Output,
    },
    /// Disable a user (their keys stop working).
    Disable {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
pub(super) enum KeyCommand {
    /// Create a key (and its user, if new); prints the key (once) and, after a tab, the
    /// secret that signs its tasks' notifications.
    Create {
        #[arg(long)]
        user: String,
        /// The key's own quota limit, on top of the user's balance.
        #[arg(long)]
        limit: Option<i64>,
        /// When the key stops working: `2026-12-31` or `2026-12-31T18:00:00Z`.
        #[arg(long, value_parser = parse_expiry)]
        expires: Option<i64>,
        #[command(flatten)]
        out: Output,
    },
    /// Disable a key.
    Disable {
        #[arg(long)]
        id: i64,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        out: Output,
    },
}

pub(super) async fn key(store: &dyn Store, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create {
            user,
            limit,
            expires,
            out,
        } => {
            anyhow::ensure!(limit.is_none_or(|l| l >= 0), "--limit must not be negative");
            let user = admin::user_or_create(
                store,
                admin::valid_user_name(&user).map_err(anyhow::Error::msg)?,
            )
            .await?;
            let created = admin::create_key(store, &user, limit, expires).await?;
            if out.json {
                println!(
                    "{}",
                    json!({ "id": created.key.id, "key": created.secret, "user_id": user.id,
                        "hook_secret": created.hook_secret })
                );
            } else {
                println!("{}\t{}", created.secret, created.hook_secret);
            }
        }
        KeyCommand::Disable { id } => {
            store
                .set_key_enabled(id, false)
                .await?
                .with_context(|| format!("no key {id}"))?;
        }
        KeyCommand::List { user, out } => {
            let user_id = match user {
                Some(name) => Some(
                    store
                        .user_by_name(&name)
                        .await?
                        .with_context(|| format!("no user called {name}"))?
                        .id,
                ),
                None => None,
            };
            let keys = store.list_keys(user_id).await?;
            if out.json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| json!({"id": k.id, "user_id": k.user_id, "hint": k.key_hint, "enabled": k.enabled,
                        "expires_at": k.expires_at, "quota_limit": k.quota_limit, "quota_used": k.quota_used}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for k in keys {
                    let state = if k.enabled { "enabled" } else { "disabled" };
                    println!("{}\t{}\t{}\t{state}", k.id, k.user_id, k.key_hint);
                }
            }
        }
    }
    Ok(())
}

async fn user_named(store: &dyn Store, name: &str) -> anyhow::Result<User> {
    store
        .user_by_name(name)
        .await?
        .with_context(|| format!("no user called {name}"))
}

fn print_user(user: &User, json: bool) {
    if json {
        println!(
            "{}",
            json!({"id": user.id, "name": user.name, "role": user.role.as_str(),
            "balance": user.balance, "enabled": user.enabled})
        );
    } else {
        let state = if user.enabled { "enabled" } else { "disabled" };
        println!(
            "{}\t{}\t{}\t{}\t{state}",
            user.id,
            user.name,
            user.role.as_str(),
            user.balance
        );
    }
}

pub(super) async fn user(store: &dyn Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            quota,
            admin: is_admin,
            out,
        } => {
            anyhow::ensure!(quota >= 0, "--quota must not be negative");
            let name = admin::valid_user_name(&name).map_err(anyhow::Error::msg)?;
            let role = if is_admin { Role::Admin } else { Role::User };
            let created = admin::create_user_with_quota(store, name, role, quota).await?;
            if out.json {
                println!(
                    "{}",
                    json!({"id": created.user.id, "name": created.user.name, "access_token": created.access_token})
                );
            } else {
                println!("{}\t{}", created.user.id, created.access_token);
            }
        }
        UserCommand::List { out } => {
            let users = store.list_users().await?;
            if out.json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|u| {
                        json!({"id": u.id, "name": u.name, "role": u.role.as_str(),
                    "balance": u.balance, "enabled": u.enabled})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                users.iter().for_each(|u| print_user(u, false));
            }
        }
        UserCommand::Topup { name, amount, out } => {
            anyhow::ensure!(amount > 0, "--amount must be positive");
            let user = user_named(store, &name).await?;
            print_user(&store.top_up(user.id, amount).await?, out.json);
        }
        UserCommand::Disable { name } => {
            let user = user_named(store, &name).await?;
            store.set_user_enabled(user.id, false).await?;
        }
    }
    Ok(())
}

/// `2026-12-31` (midnight UTC) or an RFC 3339 time, as Unix milliseconds.
fn parse_expiry(text: &str) -> Result<i64, String> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let at = humantime::parse_rfc3339_weak(&full).map_err(|e| format!("`{text}`: {e}"))?;
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| format!("`{text}` is before 1970"))
}
