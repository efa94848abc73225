//! The gateway application: [`App::build`] opens the store and binds the listener;
//! [`App::run`] serves and runs the background workers until shutdown.

use crate::config::Config;
use crate::domain::secrets::{Signer, new_signing_secret};
use crate::notify::HookClient;
use crate::store::{self, Store, StoreError};
use crate::upstream::UpstreamClient;
use crate::{http, workers};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What every handler and worker shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub upstream: UpstreamClient,
    /// The client for client hooks.
    pub hooks: HookClient,
    pub signer: Signer,
    /// The gateway's absolute base for URLs made outside a request (callbacks): the public
    /// URL, else the address it listens on.
    pub base_url: Arc<str>,
    /// Wakes the notifier when a task changed, so that notifications leave at once.
    pub notifications_queued: Arc<Notify>,
}

impl AppState {
    /// Opens the configured store (running its migrations) and prepares the shared clients.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        let store = store::open(&config.database_url()).await?;
        Self::with_store(config, store).await
    }

    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> Result<Self, StartError> {
        // Every gateway process on one database must sign alike: the secret lives there.
        let secret = match &config.secret {
            Some(secret) => secret.clone(),
            None => {
                store
                    .setting_or_insert("signing_secret", &new_signing_secret())
                    .await?
            }
        };
        let base_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", config.listen),
        };
        Ok(Self {
            upstream: UpstreamClient::new(config.upstream_timeout),
            hooks: HookClient::new(config.callback_timeout, config.allow_private_hooks),
            signer: Signer::new(&secret),
            base_url: base_url.into(),
            notifications_queued: Arc::new(Notify::new()),
            config: Arc::new(config),
            store,
        })
    }

    /// Tells the notifier that a task changed (and may have queued a notification).
    pub fn task_changed(&self) {
        self.notifications_queued.notify_one();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// A bound, ready gateway.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Opens the store and binds the configured address (port 0 picks a free one).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let state = AppState::open(config).await?;
        Self::from_state(state).await
    }

    pub async fn from_state(mut state: AppState) -> Result<Self, StartError> {
        let addr = state.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        if state.config.public_url.is_none() {
            // The port is known only now; an unspecified address is reachable on loopback.
            let mut bound = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            if bound.ip().is_unspecified() {
                bound.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            state.base_url = format!("http://{bound}").into();
        }
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves and runs the workers until `shutdown` resolves, then stops both cleanly.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let cancel = CancellationToken::new();
        let poller = tokio::spawn(workers::poller::run(self.state.clone(), cancel.clone()));
        let notifier = tokio::spawn(workers::notifier::run(self.state.clone(), cancel.clone()));

        let stop = cancel.clone();
        let server = axum::serve(self.listener, http::router(self.state)).with_graceful_shutdown(
            async move {
                tokio::select! {
                    _ = shutdown => {}
                    _ = stop.cancelled() => {}
                }
            },
        );
        let served = server.await;
        cancel.cancel();
        if let Err(e) = poller.await {
            tracing::error!(error = %e, "poller ended abnormally");
        }
        if let Err(e) = notifier.await {
            tracing::error!(error = %e, "notifier ended abnormally");
        }
        tracing::info!("gateway stopped");
        served.map_err(StartError::Serve)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}
