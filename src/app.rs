//! The gateway application: [`App::build`] opens the store and binds the listener;
//! [`App::run`] serves and runs the background workers until shutdown.

use crate::config::Config;
use crate::state::{AppState, StartError};
use crate::{http, workers};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
        let copier = tokio::spawn(workers::copier::run(self.state.clone(), cancel.clone()));
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
        let workers = [
            ("poller", poller),
            ("copier", copier),
            ("notifier", notifier),
        ];
        for (name, worker) in workers {
            if let Err(e) = worker.await {
                tracing::error!(error = %e, worker = name, "worker ended abnormally");
            }
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
