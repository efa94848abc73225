//! [`AppState`]: what every handler and worker shares, opened from the configuration.

use crate::config::Config;
use crate::domain::secrets::{Signer, new_signing_secret};
use crate::notify::HookClient;
use crate::relay::routing::ChannelHealth;
use crate::storage::derive::Renderer;
use crate::storage::{BlobStore, StorageError};
use crate::store::{self, Store, StoreError};
use crate::upstream::UpstreamClient;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Notify;

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
    /// How each channel is doing, for routing (per process).
    pub health: Arc<ChannelHealth>,
    /// This process among the gateways sharing the database: holder of its leases.
    pub instance: Arc<str>,
    /// Where copied images and videos live.
    pub blobs: BlobStore,
    /// Cuts grid parts and thumbnails, a few at a time.
    pub renderer: Renderer,
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
        let instance: Arc<str> = uuid::Uuid::new_v4().simple().to_string()[..12].into();
        let base_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                if config.listen.ip().is_unspecified() {
                    tracing::warn!(
                        listen = %config.listen,
                        "public_url is not set: upstream callback URLs and the image URLs in client \
                         callbacks will name an address nobody can reach; set MJGATE_PUBLIC_URL"
                    );
                }
                format!("http://{}", config.listen)
            }
        };
        Ok(Self {
            upstream: UpstreamClient::new(config.upstream_timeout, &instance),
            hooks: HookClient::new(config.callback_timeout, config.allow_private_hooks),
            base_url: base_url.into(),
            notifications_queued: Arc::new(Notify::new()),
            instance,
            health: Arc::new(ChannelHealth::new(
                config.channel_failures_to_trip,
                config.channel_cooldown,
            )),
            signer: Signer::new(&secret),
            blobs: BlobStore::open(&config)?,
            renderer: Renderer::new(2),
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
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
}
