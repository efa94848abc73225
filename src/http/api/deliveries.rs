//! `GET /api/task/{mj_id}/deliveries` (admins): a task's client notifications, each with the
//! task object it carries and every attempt at sending it.

use super::auth::Admin;
use super::{Data, ManageError};
use crate::relay::TaskView;
use crate::state::AppState;
use crate::store::{Delivery, DeliveryAttempt, DeliveryState, Task};
use axum::extract::{Path, State};
use serde::Serialize;

#[derive(Serialize)]
pub struct DeliveryOut {
    id: i64,
    seq: i64,
    url: String,
    state: DeliveryState,
    /// The task's status and progress that this notification reports.
    status: String,
    progress: String,
    created_at: i64,
    /// When the next attempt is due, while pending.
    next_attempt_at: Option<i64>,
    finished_at: Option<i64>,
    last_error: Option<String>,
    attempts: Vec<AttemptOut>,
    /// The task object sent (SPEC 1.5).
    payload: Option<TaskView>,
}

#[derive(Serialize)]
pub struct AttemptOut {
    at: i64,
    status_code: Option<i64>,
    error: Option<String>,
    duration_ms: i64,
}

impl From<DeliveryAttempt> for AttemptOut {
    fn from(a: DeliveryAttempt) -> Self {
        Self {
            at: a.at,
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

pub async fn task_deliveries(
    State(state): State<AppState>,
    _: Admin,
    Path(mj_id): Path<String>,
) -> Result<Data<Vec<DeliveryOut>>, ManageError> {
    if state.store.task(&mj_id).await?.is_none() {
        return Err(ManageError::NotFound(format!("task {mj_id} not found")));
    }
    let deliveries = state.store.task_deliveries(&mj_id).await?;
    Ok(Data(
        deliveries
            .into_iter()
            .map(|(d, attempts)| delivery_out(&state, d, attempts))
            .collect(),
    ))
}

fn delivery_out(state: &AppState, d: Delivery, attempts: Vec<DeliveryAttempt>) -> DeliveryOut {
    let payload = serde_json::from_str::<Task>(&d.payload)
        .ok()
        .map(|task| TaskView::new(&task, &state.base_url, &state.signer));
    DeliveryOut {
        id: d.id,
        seq: d.seq,
        url: d.url,
        state: d.state,
        status: d.status.to_string(),
        progress: d.progress,
        created_at: d.created_at,
        next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
        finished_at: d.finished_at,
        last_error: d.last_error,
        attempts: attempts.into_iter().map(AttemptOut::from).collect(),
        payload,
    }
}
