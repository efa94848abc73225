//! A small upstream file host of the tests' own, counting what it serves, and tasks driven
//! to success through the store with links to it.

use super::Gateway;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;
use image::RgbImage;
use mjgate::domain::ids::{mint_task_id, now_ms};
use mjgate::domain::{BotType, TaskAction, TaskStatus};
use mjgate::store::{NewChannel, NewTask, TaskUpdate};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The test's own upstream file host, counting what it serves.
#[derive(Default)]
pub struct FileHost {
    pub requests: AtomicU64,
    /// Bytes of `/big.png` produced so far.
    pub produced: AtomicU64,
    /// Size of `/big.png`: a PNG signature and padding, without a Content-Length, so that
    /// only a cut-off read stops it early.
    pub big_size: u64,
    /// Requests to `/flaky.png` that fail before it works.
    pub flaky_failures: AtomicU64,
}

/// Starts a host; returns its base URL.
pub async fn start_file_host(flaky_failures: u64, big_size: u64) -> (String, Arc<FileHost>) {
    let host = Arc::new(FileHost {
        flaky_failures: AtomicU64::new(flaky_failures),
        big_size,
        ..FileHost::default()
    });
    let app = Router::new()
        .route("/small.png", get(small))
        .route("/big.png", get(big))
        .route("/flaky.png", get(flaky))
        .route("/clip.mp4", get(clip))
        .route("/moved.png", get(moved))
        .with_state(host.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, host)
}

/// `/small.png` (served as `image/jpeg`, which it is not).
pub fn small_png() -> Bytes {
    let image = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner().into()
}

/// `/clip.mp4`: an MP4 header and filler.
pub fn fake_mp4() -> Bytes {
    let mut bytes = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    bytes.extend((0..50_000u32).map(|i| (i % 251) as u8));
    bytes.into()
}

async fn small(State(host): State<Arc<FileHost>>) -> Response {
    host.requests.fetch_add(1, Ordering::SeqCst);
    // Claims to be JPEG: the gateway must go by the bytes.
    ([("content-type", "image/jpeg")], small_png()).into_response()
}

async fn clip(State(host): State<Arc<FileHost>>) -> Response {
    host.requests.fetch_add(1, Ordering::SeqCst);
    ([("content-type", "application/octet-stream")], fake_mp4()).into_response()
}

async fn moved(State(host): State<Arc<FileHost>>) -> Response {
    host.requests.fetch_add(1, Ordering::SeqCst);
    (StatusCode::FOUND, [("location", "/small.png")]).into_response()
}

async fn flaky(State(host): State<Arc<FileHost>>) -> Response {
    host.requests.fetch_add(1, Ordering::SeqCst);
    let left = host.flaky_failures.load(Ordering::SeqCst);
    if left > 0 {
        host.flaky_failures.store(left - 1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    ([("content-type", "image/png")], small_png()).into_response()
}

async fn big(State(host): State<Arc<FileHost>>) -> Response {
    host.requests.fetch_add(1, Ordering::SeqCst);
    const CHUNK: usize = 64 * 1024;
    let mut first = small_png().to_vec();
    first.resize(CHUNK, 0);
    let chunks = stream::unfold(
        (host, 0u64, Some(first)),
        |(host, sent, first)| async move {
            if sent >= host.big_size {
                return None;
            }
            let chunk = first
                .map(Bytes::from)
                .unwrap_or_else(|| Bytes::from(vec![0u8; CHUNK]));
            host.produced
                .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            let sent = sent + chunk.len() as u64;
            Some((Ok::<_, std::io::Error>(chunk), (host, sent, None)))
        },
    );
    ([("content-type", "image/png")], Body::from_stream(chunks)).into_response()
}

/// A task on a channel at `base`, driven to `SUCCESS` through the store's update path (as a
/// poll or a callback would), with these upstream links.
pub async fn succeeded_task(
    store: &dyn mjgate::store::Store,
    user_id: i64,
    channel_id: i64,
    image_url: &str,
    video_url: Option<&str>,
) -> String {
    let mj_id = mint_task_id(now_ms());
    store
        .insert_task(
            &NewTask {
                mj_id: mj_id.clone(),
                user_id,
                key_id: None,
                parent_id: None,
                action: TaskAction::Imagine,
                status: TaskStatus::Submitted,
                prompt: "direct".to_string(),
                description: String::new(),
                state: None,
                bot_type: BotType::MidJourney,
                mode: None,
                custom_id: None,
                notify_hook: None,
                submit_time: now_ms(),
            },
            0,
        )
        .await
        .unwrap();
    store
        .mark_forwarded(
            &mj_id,
            channel_id,
            &format!("up-{mj_id}"),
            TaskStatus::Submitted,
        )
        .await
        .unwrap();
    let seen = store.task(&mj_id).await.unwrap().unwrap();
    let done = TaskUpdate {
        status: TaskStatus::Success,
        progress: "100%".to_string(),
        prompt: "direct".to_string(),
        prompt_en: "direct".to_string(),
        description: String::new(),
        start_time: now_ms(),
        finish_time: now_ms(),
        upstream_image_url: Some(image_url.to_string()),
        video_url: video_url.map(str::to_string),
        video_urls: video_url.map(str::to_string).into_iter().collect(),
        fail_reason: None,
        buttons: vec![],
        properties: Default::default(),
    };
    let updated = store.update_task(&seen, &done, now_ms()).await.unwrap();
    assert!(updated.is_some());
    mj_id
}

/// Adds the host as a channel.
pub async fn add_channel(gw: &Gateway, base: &str, is_local: bool) -> i64 {
    gw.store()
        .create_channel(&NewChannel {
            name: format!("files-{is_local}"),
            base_url: base.to_string(),
            is_local,
            ..NewChannel::default()
        })
        .await
        .unwrap()
        .id
}

/// The signed URL of a task's `image` or `video`.
pub fn signed(gw: &Gateway, kind: &str, id: &str) -> String {
    format!(
        "{}/mj/{kind}/{id}?sig={}",
        gw.base,
        gw.state.signer.sign(id)
    )
}
