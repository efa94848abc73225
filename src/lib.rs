//! mjgate: a gateway for the Midjourney task API, and a simulator of its upstream.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod net_guard;
pub mod notify;
pub mod proto;
pub mod relay;
pub mod sim;
pub mod state;
pub mod storage;
pub mod store;
pub mod upstream;
pub mod workers;

pub use app::App;
pub use config::Config;
pub use state::AppState;
