//! The copier (SPEC 4): copies each succeeded task's image and video from the upstream into
//! the gateway's storage, so that they outlive the upstream's links. Jobs are rows queued
//! with the task's success; a worker claims a few at a time under a lease (so that several
//! gateway processes share them, and a crashed worker's job is taken up again), and each
//! copy is bounded in size (`max_image_bytes`) and time, and retried with backoff.

use crate::domain::ids::now_ms;
use crate::state::AppState;
use crate::storage::{self, StorageError, sniff_content_type};
use crate::store::{FileKind, StoreResult, StoredFile, TaskFile};
use crate::upstream::UpstreamError;
use futures_util::future::join_all;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Jobs one worker runs at once.
const BATCH: i64 = 4;
/// Attempts before a job that keeps failing is given up.
pub const MAX_ATTEMPTS: i64 = 6;
/// Waits between attempts: this, doubled each time, at most `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Copies until `shutdown` fires. A copy cut off by the shutdown is taken up again (by this
/// or another process) when its lease runs out.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let interval = state.config.poll_interval;
    super::every("copier", interval, shutdown, || copy_due(&state)).await;
}

/// Claims and runs due jobs until none is left.
pub async fn copy_due(state: &AppState) -> StoreResult<()> {
    loop {
        let now = now_ms();
        let lease = now + lease_time(state).as_millis() as i64;
        let jobs = state.store.claim_file_copies(now, lease, BATCH).await?;
        if jobs.is_empty() {
            return Ok(());
        }
        for result in join_all(jobs.iter().map(|job| run_job(state, job))).await {
            result?;
        }
    }
}

/// The longest one copy may take: the fetch has the upstream timeout, the write as long.
fn copy_time(state: &AppState) -> Duration {
    state.config.upstream_timeout * 2
}

/// How long a claim holds a job: longer than any copy, so that no two run at once.
fn lease_time(state: &AppState) -> Duration {
    copy_time(state) + Duration::from_secs(30)
}

async fn run_job(state: &AppState, job: &TaskFile) -> StoreResult<()> {
    let outcome = tokio::time::timeout(copy_time(state), copy(state, job))
        .await
        .unwrap_or_else(|_| Err(CopyError::Transient("the copy took too long".to_string())));
    let now = now_ms();
    match outcome {
        Ok(stored) => {
            let recorded = state.store.finish_file_copy(job, &stored, now).await?;
            tracing::debug!(task = %job.mj_id, kind = job.kind.as_str(), size = stored.size, recorded, "file copied");
        }
        Err(CopyError::Permanent(reason)) => {
            tracing::warn!(task = %job.mj_id, kind = job.kind.as_str(), %reason, "file not copied");
            state.store.fail_file_copy(job, &reason, now).await?;
        }
        Err(CopyError::Transient(reason)) if job.attempts >= MAX_ATTEMPTS => {
            tracing::warn!(task = %job.mj_id, kind = job.kind.as_str(), %reason, attempts = job.attempts, "file copy given up");
            state.store.fail_file_copy(job, &reason, now).await?;
        }
        Err(CopyError::Transient(reason)) => {
            let next = now + backoff(job.attempts).as_millis() as i64;
            tracing::info!(task = %job.mj_id, kind = job.kind.as_str(), %reason, attempts = job.attempts, "file copy will be retried");
            state.store.retry_file_copy(job, &reason, next, now).await?;
        }
    }
    Ok(())
}

/// The wait after the `attempts`th failure.
fn backoff(attempts: i64) -> Duration {
    let doublings = attempts.clamp(1, 16) as u32 - 1;
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// Why a copy did not happen: worth another try, or not.
#[derive(Debug)]
enum CopyError {
    Transient(String),
    Permanent(String),
}

async fn copy(state: &AppState, job: &TaskFile) -> Result<StoredFile, CopyError> {
    let allow_private = channel_is_local(state, &job.mj_id)
        .await
        .map_err(|e| CopyError::Transient(e.to_string()))?;
    let source = state
        .upstream
        .fetch_image(&job.source_url, state.config.max_image_bytes, allow_private)
        .await
        .map_err(classify_fetch)?;
    let key = storage::file_key(&job.mj_id, job.kind);
    let written = state
        .blobs
        .write_stream(&key, source.body)
        .await
        .map_err(|e| match e {
            StorageError::Source(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
                CopyError::Permanent(format!("the file is {io}"))
            }
            other => CopyError::Transient(other.to_string()),
        })?;
    let content_type = match (job.kind, sniff_content_type(&written.head)) {
        (FileKind::Image, Some(t)) if t.starts_with("image/") => t.to_string(),
        (FileKind::Video, Some(t)) => t.to_string(),
        (FileKind::Video, None) => source.content_type,
        (FileKind::Image, _) => {
            let _ = state.blobs.delete(&key).await;
            return Err(CopyError::Permanent(
                "the upstream's file is not an image".to_string(),
            ));
        }
    };
    Ok(StoredFile {
        storage_key: key,
        content_type,
        size: written.size as i64,
        etag: format!("\"{}\"", &written.sha256[..32]),
    })
}

/// Whether the task's channel is marked local, which lets its files live on private
/// addresses.
async fn channel_is_local(state: &AppState, mj_id: &str) -> StoreResult<bool> {
    let Some(channel_id) = state.store.task(mj_id).await?.and_then(|t| t.channel_id) else {
        return Ok(false);
    };
    Ok(state
        .store
        .channel(channel_id)
        .await?
        .is_some_and(|c| c.is_local))
}

fn classify_fetch(e: UpstreamError) -> CopyError {
    match &e {
        UpstreamError::Refused(_) | UpstreamError::TooLarge(_) => {
            CopyError::Permanent(e.to_string())
        }
        // Gone or forbidden (an expired CDN link) will not come back; 408 and 429 may.
        UpstreamError::Status { status, .. }
            if (400..500).contains(status) && *status != 408 && *status != 429 =>
        {
            CopyError::Permanent(e.to_string())
        }
        _ => CopyError::Transient(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(4), Duration::from_secs(16));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
