//! The upstream simulator (SPEC 7): a stand-in for a midjourney-proxy(-plus) server that
//! speaks its protocol, runs tasks through their real lifecycle, draws real PNG images, calls
//! `notifyHook`s and misbehaves on demand.
//!
//! The folder: `routes` (HTTP, secret check, request log), `submit` (what each route asks
//! for), `state` (tasks, accounts, queues, files), `runner` (one task's life), `render`
//! (the pictures and texts a job produces), `draw` (pixels).

mod buttons;
mod draw;
mod refusal;
mod render;
mod routes;
mod runner;
mod state;
mod submit;
mod task;
mod view;

use crate::domain::Mode;
use serde::{Deserialize, Serialize};
use state::SimState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How fast simulated tasks move through their progress steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// A few milliseconds per step: a task finishes well under a second.
    #[default]
    Fast,
    /// Like the real thing: tens of seconds per imagine.
    Real,
    /// A fixed time per progress step.
    Step(Duration),
}

/// Misbehaviour on demand. Words are matched in prompts; the `*_all` switches apply to every
/// request while set (`POST /sim/faults` changes them at run time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// A task whose prompt holds it fails part-way with a `failReason`.
    pub fail_word: String,
    /// A task whose prompt holds it stops progressing (and keeps its account slot).
    pub stall_word: String,
    /// A submit whose prompt holds it answers HTTP 500 and creates nothing.
    pub http500_word: String,
    /// A submit whose prompt holds it never answers.
    pub hang_word: String,
    /// A task whose prompt holds it runs, but fetch and list-by-condition stop knowing it.
    pub forget_word: String,
    /// Forget every task while set.
    pub forget_all: bool,
    /// Every submit answers HTTP 500 while set.
    pub http500_all: bool,
    /// Every submit hangs while set.
    pub hang_all: bool,
    /// Every submit waits this long before it answers (a slow upstream).
    pub submit_delay_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_word: "sim-fail".to_string(),
            stall_word: "sim-stall".to_string(),
            http500_word: "sim-500".to_string(),
            hang_word: "sim-hang".to_string(),
            forget_word: "sim-forget".to_string(),
            forget_all: false,
            http500_all: false,
            hang_all: false,
            submit_delay_ms: 0,
        }
    }
}

/// How a simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The `mj-api-secret` clients must send; `None` accepts anyone.
    pub secret: Option<String>,
    pub pace: Pace,
    /// Simulated Discord accounts.
    pub accounts: usize,
    /// Tasks one account runs at once.
    pub concurrency: usize,
    /// Tasks one account holds waiting; beyond it submits answer code 23.
    pub queue_size: usize,
    /// Speed modes the accounts offer; a request for another answers code 3.
    pub modes: Vec<Mode>,
    /// Prompts holding one of these answer code 24.
    pub banned_words: Vec<String>,
    pub faults: Faults,
    /// Base of the image links it hands out; by default its own address.
    pub public_url: Option<String>,
    /// Side of an imagine grid in pixels (512 by default; load tests use less).
    pub image_size: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            secret: None,
            pace: Pace::Fast,
            accounts: 1,
            concurrency: 3,
            queue_size: 10,
            modes: Mode::ALL.to_vec(),
            banned_words: Vec::new(),
            faults: Faults::default(),
            public_url: None,
            image_size: draw::GRID,
        }
    }
}

/// One request the simulator received on its task API, for tests to inspect.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub api_secret: Option<String>,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub body: Option<serde_json::Value>,
    /// When the request arrived and when it was answered.
    pub at_ms: i64,
    pub done_ms: i64,
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    base_url: String,
    state: Arc<SimState>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl Simulator {
    /// Starts a simulator on a free loopback port.
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::serve_on(listener, config)
    }

    /// Serves on a bound listener until [`Simulator::stop`].
    pub fn serve_on(listener: TcpListener, config: SimConfig) -> std::io::Result<Simulator> {
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| base_url.clone());
        let shutdown = CancellationToken::new();
        let state = Arc::new(SimState::new(config, public_url, shutdown.clone()));
        let app = routes::router(state.clone());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        Ok(Simulator {
            addr,
            base_url,
            state,
            shutdown,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: what a channel's base URL should be.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// Every request answered on the task API so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests()
    }

    /// Stops serving and abandons running tasks.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
    }
}

/// Command-line arguments of `mjgate sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// The `mj-api-secret` clients must send; without it anyone may call.
    #[arg(long, env = "MJGATE_SIM_SECRET")]
    pub secret: Option<String>,
    /// `real` (tens of seconds per imagine), `fast` (well under a second), or a time per
    /// progress step such as `500ms`.
    #[arg(long, default_value = "real", value_parser = parse_pace)]
    pub pace: Pace,
    /// Simulated Discord accounts.
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Tasks one account runs at once.
    #[arg(long, default_value_t = 3)]
    pub concurrency: usize,
    /// Tasks one account holds waiting.
    #[arg(long, default_value_t = 10)]
    pub queue_size: usize,
    /// Speed modes offered, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "FAST,RELAX,TURBO", value_parser = parse_mode)]
    pub modes: Vec<Mode>,
    /// A word that makes a prompt answer code 24 (repeatable).
    #[arg(long = "banned-word")]
    pub banned_words: Vec<String>,
    /// Base of the image links handed out, when clients reach it by another address.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Side of an imagine grid in pixels.
    #[arg(long, default_value_t = draw::GRID, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub image_size: u32,
}

fn parse_pace(text: &str) -> Result<Pace, String> {
    match text {
        "fast" => Ok(Pace::Fast),
        "real" => Ok(Pace::Real),
        other => crate::config::parse_duration(other)
            .map(Pace::Step)
            .map_err(|_| format!("`{other}` is not fast, real or a duration")),
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    Mode::try_from(text.trim().to_ascii_uppercase()).map_err(|e| e.to_string())
}

impl SimArgs {
    /// The simulator these arguments describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            secret: self.secret.clone(),
            pace: self.pace,
            accounts: self.accounts.max(1),
            concurrency: self.concurrency.max(1),
            queue_size: self.queue_size,
            modes: self.modes.clone(),
            banned_words: self.banned_words.clone(),
            faults: Faults::default(),
            public_url: self.public_url.clone(),
            image_size: self.image_size,
        }
    }
}
