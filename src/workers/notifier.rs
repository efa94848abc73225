//! The notifier (SPEC 5): sends queued client notifications. It leases due deliveries from
//! the store (one per task at a time, so a task's states arrive in order), POSTs each with
//! its signature, records every attempt, retries with exponential backoff, and gives a
//! delivery up once it is older than `callback_max_age`. Leases make it safe to run in
//! several processes on one database; a crash only delays what was leased.

use crate::domain::ids::now_ms;
use crate::relay::TaskView;
use crate::state::AppState;
use crate::store::{Delivery, DeliveryAttempt, DeliveryNext, Task};
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// Deliveries being sent at once by one process.
const MAX_IN_FLIGHT: usize = 32;
/// How often the store is asked for due deliveries when nothing wakes the notifier
/// (retries coming due, work queued by other processes).
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// The first retry waits this long; each next one twice as long, up to the cap.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(120);

/// Sends notifications until `shutdown` fires.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut leased: HashMap<Id, i64> = HashMap::new();
    loop {
        let room = MAX_IN_FLIGHT - in_flight.len();
        if room > 0 {
            match claim(&state, room).await {
                Ok(batch) => {
                    for delivery in batch {
                        let id = delivery.id;
                        let handle = in_flight.spawn(deliver(state.clone(), delivery));
                        leased.insert(handle.id(), id);
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming deliveries failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "a delivery ended abnormally");
                        e.id()
                    }
                };
                leased.remove(&id);
            }
            _ = state.notifications_queued.notified() => {}
            _ = tokio::time::sleep(IDLE_CHECK) => {}
        }
    }
    // Unfinished sends are dropped and their leases given back, so that the next process
    // to start sends them at once instead of after the lease.
    in_flight.abort_all();
    while let Some(done) = in_flight.join_next_with_id().await {
        if let Ok((id, ())) = done {
            leased.remove(&id);
        }
    }
    let unfinished: Vec<i64> = leased.into_values().collect();
    if let Err(e) = state.store.release_deliveries(&unfinished).await {
        tracing::warn!(error = %e, "releasing deliveries failed; they wait for their lease");
    }
    tracing::info!("notifier stopped");
}

async fn claim(state: &AppState, room: usize) -> crate::store::StoreResult<Vec<Delivery>> {
    let now = now_ms();
    // Long enough for one attempt and its record, whatever the time limit.
    let lease = 2 * state.config.callback_timeout.as_millis() as i64 + 30_000;
    state
        .store
        .claim_deliveries(now, now + lease, room as i64)
        .await
}

/// One attempt at one delivery, and its record.
async fn deliver(state: AppState, delivery: Delivery) {
    let outcome = match request(&state, &delivery).await {
        Ok((secret, body)) => {
            state
                .hooks
                .post(&delivery.url, delivery.id, &secret, body)
                .await
        }
        Err(error) => crate::notify::sender::PostOutcome {
            at: now_ms(),
            status: None,
            error: Some(error),
            duration_ms: 0,
        },
    };
    let error = match (outcome.status, &outcome.error) {
        (_, Some(e)) => Some(e.clone()),
        (Some(status), None) if !outcome.succeeded() => Some(format!("HTTP {status}")),
        _ => None,
    };
    let next = next_step(
        &delivery,
        outcome.succeeded(),
        now_ms(),
        state.config.callback_max_age,
    );
    match next {
        DeliveryNext::Delivered => {
            tracing::debug!(task = %delivery.mj_id, seq = delivery.seq, "notification delivered")
        }
        DeliveryNext::RetryAt(_) => {
            tracing::debug!(task = %delivery.mj_id, seq = delivery.seq, error = ?error, "notification failed, will retry")
        }
        DeliveryNext::GiveUp => {
            tracing::warn!(task = %delivery.mj_id, seq = delivery.seq, url = %delivery.url, error = ?error, "notification given up")
        }
    }
    let attempt = DeliveryAttempt {
        delivery_id: delivery.id,
        at: outcome.at,
        status_code: outcome.status.map(i64::from),
        error,
        duration_ms: outcome.duration_ms,
    };
    if let Err(e) = state
        .store
        .record_attempt(&attempt, next, delivery.lease_until)
        .await
    {
        // The lease runs out and the delivery is tried again: at least once, maybe twice.
        tracing::error!(delivery = delivery.id, error = %e, "recording a delivery attempt failed");
    }
}

/// The signing secret and the body: the task as it was when queued, shown as clients see
/// tasks (SPEC 1.5).
async fn request(state: &AppState, delivery: &Delivery) -> Result<(String, Vec<u8>), String> {
    let key_id = delivery
        .key_id
        .ok_or("the task has no API key to sign with")?;
    let secret = state
        .store
        .key_hook_secret(key_id)
        .await
        .map_err(|e| format!("reading the signing secret: {e}"))?
        .ok_or("the task's API key no longer exists")?;
    let task: Task = serde_json::from_str(&delivery.payload)
        .map_err(|e| format!("unreadable queued task: {e}"))?;
    let view = TaskView::new(&task, &state.base_url, &state.signer);
    let body = serde_json::to_vec(&view).expect("a task view serializes");
    Ok((secret, body))
}

/// Delivered, retried after a backoff, or given up once older than `max_age`. The last
/// retry is moved up to the deadline so that the time limit holds.
pub fn next_step(
    delivery: &Delivery,
    succeeded: bool,
    now: i64,
    max_age: Duration,
) -> DeliveryNext {
    if succeeded {
        return DeliveryNext::Delivered;
    }
    let deadline = delivery.created_at + max_age.as_millis() as i64;
    if now >= deadline {
        return DeliveryNext::GiveUp;
    }
    let doublings = delivery.attempts.clamp(0, 20) as u32;
    let wait = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    DeliveryNext::RetryAt((now + wait.as_millis() as i64).min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TaskStatus;
    use crate::store::DeliveryState;

    fn delivery(attempts: i64, created_at: i64) -> Delivery {
        Delivery {
            id: 1,
            mj_id: "1".into(),
            seq: 1,
            url: "https://example.com".into(),
            key_id: Some(1),
            status: TaskStatus::Submitted,
            progress: "0%".into(),
            payload: "{}".into(),
            state: DeliveryState::Pending,
            attempts,
            next_attempt_at: 0,
            lease_until: 0,
            last_error: None,
            created_at,
            finished_at: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_the_deadline() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            next_step(&delivery(0, 0), true, 10, hour),
            DeliveryNext::Delivered
        );
        assert_eq!(
            next_step(&delivery(0, 0), false, 0, hour),
            DeliveryNext::RetryAt(500)
        );
        assert_eq!(
            next_step(&delivery(1, 0), false, 0, hour),
            DeliveryNext::RetryAt(1000)
        );
        assert_eq!(
            next_step(&delivery(3, 0), false, 0, hour),
            DeliveryNext::RetryAt(4000)
        );
        assert_eq!(
            next_step(&delivery(30, 0), false, 0, hour),
            DeliveryNext::RetryAt(120_000)
        );
        let short = Duration::from_secs(2);
        assert_eq!(
            next_step(&delivery(5, 0), false, 1000, short),
            DeliveryNext::RetryAt(2000)
        );
        assert_eq!(
            next_step(&delivery(5, 0), false, 2000, short),
            DeliveryNext::GiveUp
        );
    }
}
