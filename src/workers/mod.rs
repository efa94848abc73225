//! Background work. Every loop takes a cancellation token and stops when it fires.

pub mod copier;
pub mod notifier;
pub mod poller;

use crate::store::StoreResult;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `round` every `interval` (a round that runs long delays the next) until `shutdown`
/// fires, which also cuts a running round short. A failed round is logged; the next one runs.
pub(crate) async fn every<F, Fut>(
    name: &str,
    interval: Duration,
    shutdown: CancellationToken,
    round: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = StoreResult<()>>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            result = round() => if let Err(e) = result {
                tracing::error!(error = %e, worker = name, "round failed");
            }
        }
    }
    tracing::info!(worker = name, "stopped");
}
