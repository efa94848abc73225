//! Probes for a load balancer: `/healthz` (the process answers) and `/readyz` (its database
//! answers and has the schema this binary expects).

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.check_ready().await {
        Ok(true) => "ready".into_response(),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database schema is not current",
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}
