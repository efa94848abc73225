//! The `mjgate` command line: the gateway, the demo, the simulator, and administration
//! against the configured database.

mod accounts;
mod channels;
mod demo;

use crate::admin;
use crate::app::{App, shutdown_signal};
use crate::config::Config;
use crate::domain::prices::price_of;
use crate::domain::{Mode, TaskAction};
use crate::sim::{SimArgs, Simulator};
use crate::store::{self, Store};
use accounts::{KeyCommand, UserCommand, key, user};
use anyhow::Context;
use channels::{ChannelCommand, channel};
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
