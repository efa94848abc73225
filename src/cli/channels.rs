//! `mjgate channel`: upstream channels and their routing settings.

use super::Output;
use crate::admin;
use crate::store::{ChannelChange, Store};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

#[derive(Subcommand)]
pub(super) enum ChannelCommand {
    /// Add an upstream midjourney-proxy server.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        base_url: String,
        #[arg(long, default_value = "")]
        secret: String,
        #[command(flatten)]
        settings: ChannelSettings,
        #[command(flatten)]
        out: Output,
    },
    /// Change a channel's settings (only those given).
    Update {
        /// The channel to change.
        #[arg(long)]
        name: String,
        #[arg(long)]
        rename: Option<String>,
        #[arg(long)]
        base_url: Option<String>,
        #[arg(long)]
        secret: Option<String>,
        /// Put a disabled channel back into rotation.
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        settings: ChannelSettings,
        #[command(flatten)]
        out: Output,
    },
    /// Take a channel out of rotation (its running tasks are still followed).
    Disable {
        #[arg(long)]
        name: String,
    },
    /// List channels.
    List {
        #[command(flatten)]
        out: Output,
    },
}

/// Routing settings of a channel, for `add` and `update`.
#[derive(Args)]
pub(super) struct ChannelSettings {
    /// Higher priorities are tried first.
    #[arg(long)]
    priority: Option<i64>,
    /// Share of traffic within a priority.
    #[arg(long)]
    weight: Option<i64>,
    /// Speed modes it offers, e.g. `FAST,RELAX,TURBO`.
    #[arg(long)]
    modes: Option<String>,
    /// Bots it serves, e.g. `MID_JOURNEY,NIJI_JOURNEY`.
    #[arg(long)]
    bot_types: Option<String>,
    /// At most this many unfinished tasks at once (0: no cap).
    #[arg(long)]
    max_in_flight: Option<i64>,
    /// Pass the client's `accountFilter` (beyond `modes`) to this upstream.
    #[arg(long)]
    pass_account_filter: Option<bool>,
    /// The upstream is on a private or loopback address on purpose.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    local: Option<bool>,
    /// Give the upstream the gateway's callback URL as each task's notifyHook, so that
    /// updates arrive at once (needs `public_url` unless the upstream is on this host).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    callbacks: Option<bool>,
}

pub(super) async fn channel(store: &dyn Store, cmd: ChannelCommand) -> anyhow::Result<()> {
    match cmd {
        ChannelCommand::Add {
            name,
            base_url,
            secret,
            settings,
            out,
        } => {
            let mut new = ChannelChange {
                name: Some(name),
                base_url: Some(base_url),
                secret: Some(secret),
                ..settings.change()
            }
            .into_new();
            admin::check_channel(&mut new).map_err(anyhow::Error::msg)?;
            let channel = store.create_channel(&new).await?;
            if out.json {
                println!("{}", json!({ "id": channel.id }));
            } else {
                println!("{}", channel.id);
            }
        }
        ChannelCommand::Update {
            name,
            rename,
            base_url,
            secret,
            enable,
            settings,
            out,
        } => {
            let id = channel_id(store, &name).await?;
            let mut change = ChannelChange {
                name: rename,
                base_url,
                secret,
                enabled: enable.then_some(true),
                ..settings.change()
            };
            admin::check_channel_change(&mut change).map_err(anyhow::Error::msg)?;
            let channel = store.update_channel(id, &change).await?;
            let channel = channel.with_context(|| format!("channel {name} is gone"))?;
            if out.json {
                println!("{}", json!({ "id": channel.id, "name": channel.name }));
            } else {
                println!("{}", channel.id);
            }
        }
        ChannelCommand::Disable { name } => {
            let id = channel_id(store, &name).await?;
            let change = ChannelChange {
                enabled: Some(false),
                ..ChannelChange::default()
            };
            store.update_channel(id, &change).await?;
            println!("channel {name} disabled");
        }
        ChannelCommand::List { out } => {
            let channels = store.list_channels().await?;
            if out.json {
                let rows: Vec<_> = channels
                    .iter()
                    .map(|c| json!({"id": c.id, "name": c.name, "base_url": c.base_url, "enabled": c.enabled,
                        "priority": c.priority, "weight": c.weight, "modes": c.modes, "bot_types": c.bot_types,
                        "max_in_flight": c.max_in_flight, "pass_account_filter": c.pass_account_filter,
                        "is_local": c.is_local, "callbacks": c.callbacks}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for c in channels {
                    let state = if c.enabled { "enabled" } else { "disabled" };
                    println!(
                        "{}\t{}\t{}\t{state}\tpriority {}\tweight {}\t{}",
                        c.id, c.name, c.base_url, c.priority, c.weight, c.modes
                    );
                }
            }
        }
    }
    Ok(())
}

async fn channel_id(store: &dyn Store, name: &str) -> anyhow::Result<i64> {
    let channels = store.list_channels().await?;
    channels
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.id)
        .with_context(|| format!("no channel named {name}"))
}

impl ChannelSettings {
    /// The routing settings given, as a change (base URL, secret and name left out).
    fn change(self) -> ChannelChange {
        ChannelChange {
            priority: self.priority,
            weight: self.weight,
            modes: self.modes,
            bot_types: self.bot_types,
            max_in_flight: self.max_in_flight,
            pass_account_filter: self.pass_account_filter,
            is_local: self.local,
            callbacks: self.callbacks,
            ..ChannelChange::default()
        }
    }
}
