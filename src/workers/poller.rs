//! The poller (SPEC 5): every few seconds, ask each channel about our unfinished tasks on it
//! (batched `list-by-condition`, channels in parallel), apply what changed, and end tasks that
//! ran out of time or that their upstream no longer knows.
//!
//! Several gateway processes may share the database: each channel's round, and the time
//! limits, are taken under a lease, so one process at a time does each, at the configured
//! rate, and a process that dies hands its work on when its leases run out.

use crate::domain::ids::now_ms;
use crate::relay::lifecycle::{apply_report, fail_task};
use crate::state::AppState;
use crate::store::{Channel, StoreResult, Task};
use futures_util::future::join_all;
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

/// At most this many ids per `list-by-condition` call.
const BATCH: i64 = 100;

/// Polls until `shutdown` fires.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let interval = state.config.poll_interval;
    super::every("poller", interval, shutdown, || poll_once(&state)).await;
}

/// One round over the channels whose turn it is, then the time limits.
pub async fn poll_once(state: &AppState) -> StoreResult<()> {
    let channels = state.store.list_channels().await?;
    let rounds = channels.iter().map(|c| async move {
        let lease = format!("poll:{}", c.id);
        leased(state, &lease, || poll_channel(state, c)).await
    });
    for (channel, result) in channels.iter().zip(join_all(rounds).await) {
        if let Err(e) = result {
            tracing::error!(channel = %channel.name, error = %e, "polling channel failed");
        }
    }
    leased(state, "expire", || expire_stale(state)).await
}

/// Runs `work` if this process gets the lease `name`. The lease covers the work (however
/// long its upstream calls may take), then is set to end one poll interval after the start,
/// so that the next turn, here or in another process, keeps the configured rate.
async fn leased<F, Fut>(state: &AppState, name: &str, work: F) -> StoreResult<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = StoreResult<()>>,
{
    let start = now_ms();
    let interval = state.config.poll_interval.as_millis() as i64;
    let guard = interval + 4 * state.config.upstream_timeout.as_millis() as i64;
    let store = &state.store;
    if !store
        .acquire_lease(name, &state.instance, start, start + guard)
        .await?
    {
        return Ok(());
    }
    let result = work().await;
    store
        .extend_lease(name, &state.instance, start + interval)
        .await?;
    result
}

async fn poll_channel(state: &AppState, channel: &Channel) -> StoreResult<()> {
    let mut after_id = 0;
    loop {
        let tasks = state
            .store
            .unfinished_on_channel(channel.id, after_id, BATCH)
            .await?;
        let Some(last) = tasks.last() else {
            return Ok(());
        };
        after_id = last.id;
        poll_batch(state, channel, &tasks).await?;
        if (tasks.len() as i64) < BATCH {
            return Ok(());
        }
    }
}

async fn poll_batch(state: &AppState, channel: &Channel, tasks: &[Task]) -> StoreResult<()> {
    let ids = tasks.iter().filter_map(|t| t.upstream_id.clone()).collect();
    let reports = match state.upstream.list_by_condition(channel, ids).await {
        Ok(reports) => reports,
        Err(e) => {
            // An unreachable channel says nothing about its tasks; the time limit still runs.
            tracing::warn!(channel = %channel.name, error = %e, "poll failed");
            return Ok(());
        }
    };
    let mut by_id: HashMap<String, _> = reports.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut missing = Vec::new();
    for task in tasks {
        let upstream_id = task.upstream_id.as_deref().unwrap_or_default();
        match by_id.remove(upstream_id) {
            Some(report) => {
                apply_report(state, task, &report).await?;
            }
            None => missing.push(task.mj_id.clone()),
        }
    }
    let limit = i64::from(state.config.forget_after_polls);
    for (mj_id, misses) in state.store.note_missing(&missing).await? {
        if misses >= limit {
            let reason =
                format!("the upstream no longer knows this task ({misses} polls in a row)");
            fail_task(state, &mj_id, &reason).await?;
        }
    }
    Ok(())
}

/// Fails tasks past the task timeout, and tasks whose submission was cut off before any
/// channel took them (a crash mid-request).
async fn expire_stale(state: &AppState) -> StoreResult<()> {
    let now = now_ms();
    let timeout = state.config.task_timeout;
    let before = now - timeout.as_millis() as i64;
    for task in state.store.stale_tasks(before, false, 500).await? {
        let reason = format!(
            "timed out: not finished within {}",
            humantime::format_duration(timeout)
        );
        fail_task(state, &task.mj_id, &reason).await?;
    }
    // A submission tries at most a few channels, each bounded by the upstream timeout.
    let cut_off = now - 4 * state.config.upstream_timeout.as_millis() as i64;
    for task in state.store.stale_tasks(cut_off, true, 500).await? {
        fail_task(
            state,
            &task.mj_id,
            "the submission was interrupted before a channel took it",
        )
        .await?;
    }
    // Rate windows are a minute long; older counters are no longer read.
    state.store.prune_rate_counters(now - 120_000).await
}
