//! The `mjgate` command line: the gateway, the demo, the simulator, and administration
//! against the configured database.

mod demo;

use crate::admin;
use crate::app::{App, shutdown_signal};
use crate::config::Config;
use crate::domain::prices::price_of;
use crate::domain::{Mode, TaskAction};
use crate::sim::{SimArgs, Simulator};
use crate::store::{self, ChannelChange, NewChannel, Role, Store, User};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "mjgate",
    version,
    about = "A gateway for the Midjourney task API"
)]
pub struct Cli {
    /// Configuration file (TOML); `MJGATE_*` environment variables override it.
    #[arg(long, global = true, env = "MJGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Run the gateway with a built-in simulator as its channel, and a demo key.
    Demo(demo::DemoArgs),
    /// Run the upstream simulator alone: a midjourney-proxy stand-in.
    Sim(SimArgs),
    /// Manage users and their balances.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage prices (quota units; 500000 = 1 USD).
    #[command(subcommand)]
    Price(PriceCommand),
    /// Check the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Manage upstream channels.
    #[command(subcommand)]
    Channel(ChannelCommand),
}

#[derive(Subcommand)]
enum UserCommand {
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
enum KeyCommand {
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

#[derive(Subcommand)]
enum ChannelCommand {
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
struct ChannelSettings {
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

#[derive(Subcommand)]
enum PriceCommand {
    /// Set the price of an action, for one speed mode or (without --mode) for all.
    Set {
        #[arg(long)]
        action: String,
        #[arg(long)]
        mode: Option<String>,
        #[arg(long)]
        price: i64,
    },
    /// List the price of every action in every mode.
    List {
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Recompute every balance from the ledger and report differences (exit 1 if any).
    Check,
}

#[derive(Args, Clone, Copy)]
struct Output {
    /// Print JSON instead of plain text.
    #[arg(long)]
    json: bool,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        let config = || Config::load(self.config.as_deref()).context("reading the configuration");
        match self.command {
            Command::Serve => {
                let app = App::build(config()?).await?;
                tracing::info!(addr = %app.local_addr(), "mjgate listening");
                app.run(shutdown_signal()).await?;
                Ok(())
            }
            Command::Demo(args) => demo::run(args).await,
            Command::Sim(args) => sim(args).await,
            Command::User(cmd) => user(&*open(&config()?).await?, cmd).await,
            Command::Key(cmd) => key(&*open(&config()?).await?, cmd).await,
            Command::Price(cmd) => price(&*open(&config()?).await?, cmd).await,
            Command::Ledger(LedgerCommand::Check) => ledger_check(&*open(&config()?).await?).await,
            Command::Channel(cmd) => channel(&*open(&config()?).await?, cmd).await,
        }
    }
}

async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    store::open(&url)
        .await
        .with_context(|| format!("opening {url}"))
}

async fn key(store: &dyn Store, cmd: KeyCommand) -> anyhow::Result<()> {
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

async fn user(store: &dyn Store, cmd: UserCommand) -> anyhow::Result<()> {
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

async fn price(store: &dyn Store, cmd: PriceCommand) -> anyhow::Result<()> {
    match cmd {
        PriceCommand::Set {
            action,
            mode,
            price,
        } => {
            let rule =
                admin::price_rule(&action, mode.as_deref(), price).map_err(anyhow::Error::msg)?;
            store.set_price(&rule).await?;
        }
        PriceCommand::List { out } => {
            let rules = store.list_prices().await?;
            let mut rows = Vec::new();
            for action in TaskAction::ALL {
                for mode in std::iter::once(None).chain(Mode::ALL.iter().copied().map(Some)) {
                    rows.push((*action, mode, price_of(&rules, *action, mode)));
                }
            }
            if out.json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(a, m, p)| json!({"action": a, "mode": m, "price": p}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for (action, mode, price) in rows {
                    println!(
                        "{action}\t{}\t{price}",
                        mode.map(|m| m.as_str()).unwrap_or("*")
                    );
                }
            }
        }
    }
    Ok(())
}

async fn ledger_check(store: &dyn Store) -> anyhow::Result<()> {
    let problems = store.ledger_check().await?;
    for problem in &problems {
        println!("{}", problem.0);
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} differences between balances and the ledger",
        problems.len()
    );
    println!("ledger consistent");
    Ok(())
}

/// `mjgate sim`: the simulator alone, until SIGINT or SIGTERM.
async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let sim = Simulator::serve_on(listener, args.config())?;
    println!(
        "mjgate sim: a midjourney-proxy stand-in on {}",
        sim.base_url()
    );
    shutdown_signal().await;
    sim.stop().await;
    Ok(())
}

async fn channel(store: &dyn Store, cmd: ChannelCommand) -> anyhow::Result<()> {
    match cmd {
        ChannelCommand::Add {
            name,
            base_url,
            secret,
            settings,
            out,
        } => {
            let defaults = NewChannel::default();
            let mut new = NewChannel {
                name,
                base_url,
                secret,
                priority: settings.priority.unwrap_or(defaults.priority),
                weight: settings.weight.unwrap_or(defaults.weight),
                modes: settings.modes.unwrap_or(defaults.modes),
                bot_types: settings.bot_types.unwrap_or(defaults.bot_types),
                max_in_flight: settings.max_in_flight.filter(|cap| *cap > 0),
                pass_account_filter: settings.pass_account_filter.unwrap_or_default(),
                is_local: settings.local.unwrap_or_default(),
                callbacks: settings.callbacks.unwrap_or_default(),
            };
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
                priority: settings.priority,
                weight: settings.weight,
                modes: settings.modes,
                bot_types: settings.bot_types,
                max_in_flight: settings.max_in_flight,
                pass_account_filter: settings.pass_account_filter,
                is_local: settings.local,
                callbacks: settings.callbacks,
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
