//! The HTTP layer: the `/mj` task API (also under the `/mj-fast`, `/mj-relax` and `/mj-turbo`
//! prefixes), the gateway's image and video URLs, and the route upstreams call back.

mod api;
mod buttons;
mod callback;
pub mod error;
pub mod extract;
mod images;
mod probes;
mod ranges;
mod submit;
mod tasks;
pub mod validate;

use crate::domain::Mode;
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Extension, Router};
use error::ApiError;
use extract::RouteMode;
use tower_http::trace::TraceLayer;

/// Request bodies carry base64 images: allow a few of them, refuse anything larger.
pub const MAX_BODY_BYTES: usize = 30 * 1024 * 1024;

/// The whole HTTP surface of the gateway.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/mj/callback/{channel}", post(callback::upstream_callback))
        .nest("/mj", mj_routes())
        .nest("/api", api::router())
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz));
    for mode in Mode::ALL {
        let routes = mj_routes().layer(Extension(RouteMode(Some(*mode))));
        router = router.nest(&format!("{}/mj", mode.path_prefix()), routes);
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn mj_routes() -> Router<AppState> {
    Router::new()
        .route("/submit/imagine", post(submit::imagine))
        .route("/submit/blend", post(submit::blend))
        .route("/submit/describe", post(submit::describe))
        .route("/submit/shorten", post(submit::shorten))
        .route("/submit/action", post(buttons::action))
        .route("/submit/modal", post(buttons::modal))
        .route("/submit/change", post(buttons::change))
        .route("/submit/simple-change", post(buttons::simple_change))
        .route("/submit/upload-discord-images", post(submit::upload))
        .route("/insight-face/swap", post(submit::swap_face))
        .route("/task/{id}/fetch", get(tasks::fetch))
        .route("/task/list-by-condition", post(tasks::list_by_condition))
        .route("/task/list", get(tasks::list))
        .route("/task/{id}/image-seed", get(tasks::image_seed))
        .route("/image/{id}", get(images::image))
        .route("/video/{id}", get(images::video))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::bad_request("method not allowed on this route")
}
