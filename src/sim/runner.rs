//! One task's life on a simulated account: `SUBMITTED 0%`, `IN_PROGRESS` through Midjourney's
//! usual percentages, then `SUCCESS 100%` (or a fault), and the next queued task takes the slot.

use super::draw;
use super::render::render;
use super::state::SimState;
use crate::domain::TaskAction;
use std::sync::Arc;
use std::time::Duration;

/// The percentages Midjourney reports while drawing a grid.
const GRID_STEPS: &[u8] = &[15, 31, 46, 62, 78, 93];
/// Upscales and text jobs jump straight through.
const QUICK_STEPS: &[u8] = &[50];
/// Where a task with the fail word gives up.
const FAIL_AT: u8 = 46;

/// Runs a task that holds a slot, then every task queued behind it on that account.
pub(super) fn spawn(state: Arc<SimState>, id: String) {
    tokio::spawn(async move {
        let mut next = Some(id);
        while let Some(id) = next {
            if !run(&state, &id).await {
                return;
            }
            next = state.release(&id);
        }
    });
}

/// Returns false when the simulator stopped (or the task stalls until it does).
async fn run(state: &SimState, id: &str) -> bool {
    let Some(started) = state.begin(id) else {
        return true;
    };
    let step = state.step(started.action);
    let (prompt, seed, hash) = (started.prompt.clone(), started.seed, started.hash.clone());
    let (job, side) = (started.job, state.config.image_size);
    let rendered =
        tokio::task::spawn_blocking(move || render(job, &prompt, seed, &hash, side)).await;
    let rendered = match rendered {
        Ok(Ok(rendered)) => rendered,
        Ok(Err(reason)) => {
            state.fail(id, &reason);
            return true;
        }
        Err(e) => {
            state.fail(id, &format!("internal error: {e}"));
            return true;
        }
    };
    let steps = match started.action {
        TaskAction::Upscale | TaskAction::Describe | TaskAction::Shorten | TaskAction::SwapFace => {
            QUICK_STEPS
        }
        _ => GRID_STEPS,
    };
    for &percent in steps {
        if !pause(state, step).await {
            return false;
        }
        if started.fail && percent >= FAIL_AT {
            state.fail(
                id,
                "Job failed: the simulator was asked to fail this prompt",
            );
            return true;
        }
        let preview = rendered.preview.as_ref().map(|p| draw::preview(p, percent));
        state.progress(id, percent, preview);
        if started.stall {
            state.shutdown.cancelled().await;
            return false;
        }
    }
    if !pause(state, step).await {
        return false;
    }
    state.succeed(id, rendered);
    true
}

async fn pause(state: &SimState, step: Duration) -> bool {
    tokio::select! {
        _ = state.shutdown.cancelled() => false,
        _ = tokio::time::sleep(step) => true,
    }
}
