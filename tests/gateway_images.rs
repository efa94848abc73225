//! Images end to end (SPEC 4): copied into the gateway's storage once a task succeeds, served
//! from there with the HTTP caching and range machinery, cut into grid parts and thumbnails,
//! and fetched from upstreams only within the size limit and the address guard. On both
//! databases, against the simulator and a small file server of the test's own.

mod common;

use common::files::{add_channel, fake_mp4, signed, small_png, start_file_host, succeeded_task};
use common::{Db, Gateway, fast_config};
use image::{RgbImage, imageops};
use mjgate::domain::ids::now_ms;
use mjgate::sim::{Pace, SimConfig};
use mjgate::store::{FileKind, FileState, NewChannel, TaskFile};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What `/big.png` offers in the size-limit test.
const BIG: u64 = 512 * 1024 * 1024;

const PLENTY: i64 = 100 * 50_000;

async fn funded(gw: Gateway) -> Gateway {
    gw.store().top_up(gw.user_id, PLENTY).await.unwrap();
    gw
}

fn sim() -> SimConfig {
    SimConfig {
        pace: Pace::Step(Duration::from_millis(20)),
        concurrency: 10,
        ..SimConfig::default()
    }
}

/// Waits (bounded) until the copier has settled the task's file, and returns it.
async fn settled_file(gw: &Gateway, id: &str, kind: FileKind) -> TaskFile {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let file = gw.store().task_file(id, kind).await.unwrap();
        if let Some(file) = file.filter(|f| f.state != FileState::Pending) {
            return file;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the {} of task {id} was never copied",
            kind.as_str()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Imagines `prompt` and waits for its stored grid; returns the task object.
async fn stored_imagine(gw: &Gateway, prompt: &str) -> Value {
    let id = gw
        .submit("/mj/submit/imagine", json!({ "prompt": prompt }), 1)
        .await;
    let task = gw.wait_final(&id).await;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    let file = settled_file(gw, &id, FileKind::Image).await;
    assert_eq!(file.state, FileState::Done, "{file:?}");
    task
}

async fn get(gw: &Gateway, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = gw.http.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

both_backends!(
    stored_image_outlives_the_upstream,
    conditional_and_range_requests,
    grid_parts_and_thumbnails,
    oversized_images_are_refused_without_buffering,
    private_addresses_need_a_local_channel,
    failed_copies_are_retried,
    jobs_queued_before_a_start_are_done,
    videos_are_copied_too,
    concurrent_claims_never_share_a_job,
);

async fn stored_image_outlives_the_upstream(db: Db) {
    let mut gw = funded(Gateway::start(db, vec![sim()], fast_config()).await).await;
    let task = stored_imagine(&gw, "a lighthouse at dusk").await;
    let id = task["id"].as_str().unwrap();
    let url = task["imageUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/mj/image/{id}?sig=", gw.base)),
        "{url}"
    );
    let upstream_url = gw
        .store()
        .task(id)
        .await
        .unwrap()
        .unwrap()
        .upstream_image_url;
    let original = gw
        .http
        .get(upstream_url.unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    // Stored on disk under the data folder, not just proxied.
    let stored = gw.files.path().join(format!("images/tasks/{id}/image"));
    assert_eq!(std::fs::read(&stored).unwrap(), original);

    // While a task runs, its URL passes the upstream's preview through, uncached.
    let stalled = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a sim-stall moment"}),
            1,
        )
        .await;
    let running = gw.wait_for(&stalled, |t| t["imageUrl"].is_string()).await;
    let running = running.last().unwrap();
    assert_eq!(running["status"], "IN_PROGRESS", "{running}");
    let preview = get(&gw, running["imageUrl"].as_str().unwrap(), &[]).await;
    assert_eq!(preview.status(), 200);
    assert_eq!(header(&preview, "content-type"), "image/png");
    assert_eq!(header(&preview, "cache-control"), "no-store");
    assert!(preview.headers().get("etag").is_none());
    assert!(image::load_from_memory(&preview.bytes().await.unwrap()).is_ok());

    gw.sims.remove(0).stop().await;
    let served = get(&gw, url, &[]).await;
    assert_eq!(served.status(), 200);
    assert_eq!(header(&served, "content-type"), "image/png");
    assert_eq!(
        header(&served, "content-length"),
        original.len().to_string()
    );
    assert!(header(&served, "cache-control").contains("immutable"));
    assert!(header(&served, "etag").starts_with('"'));
    assert_eq!(served.bytes().await.unwrap(), original);

    // No key needed, but the signature is: a wrong, missing or borrowed one is refused.
    let forged = url.replace("sig=", "sig=00");
    assert_eq!(get(&gw, &forged, &[]).await.status(), 403);
    let unsigned = format!("{}/mj/image/{id}", gw.base);
    assert_eq!(get(&gw, &unsigned, &[]).await.status(), 403);
    let sig = url.split("sig=").nth(1).unwrap();
    let other_id = format!("{}", id.parse::<u64>().unwrap() + 1);
    let borrowed = format!("{}/mj/image/{other_id}?sig={sig}", gw.base);
    assert_eq!(get(&gw, &borrowed, &[]).await.status(), 403);
    let unknown = format!(
        "{}/mj/image/{other_id}?sig={}",
        gw.base,
        gw.state.signer.sign(&other_id)
    );
    assert_eq!(get(&gw, &unknown, &[]).await.status(), 404);
    gw.shutdown().await;
}

async fn conditional_and_range_requests(db: Db) {
    let gw = funded(Gateway::start(db, vec![sim()], fast_config()).await).await;
    let task = stored_imagine(&gw, "ranges of hills").await;
    let url = task["imageUrl"].as_str().unwrap();
    let whole = get(&gw, url, &[]).await;
    let etag = header(&whole, "etag").to_string();
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    let body = whole.bytes().await.unwrap();
    let len = body.len();

    let again = get(&gw, url, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag"), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let changed = get(&gw, url, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(changed.status(), 200);

    let part = get(&gw, url, &[("range", "bytes=100-1099")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes 100-1099/{len}")
    );
    assert_eq!(header(&part, "content-length"), "1000");
    assert_eq!(part.bytes().await.unwrap(), body.slice(100..1100));

    let tail = get(&gw, url, &[("range", "bytes=-10")]).await;
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap(), body.slice(len - 10..));

    let stale = get(&gw, url, &[("range", "bytes=0-9"), ("if-range", "\"old\"")]).await;
    assert_eq!(stale.status(), 200);
    let beyond = format!("bytes={}-", len + 10);
    let unsatisfiable = get(&gw, url, &[("range", &beyond)]).await;
    assert_eq!(unsatisfiable.status(), 416);
    assert_eq!(
        header(&unsatisfiable, "content-range"),
        format!("bytes */{len}")
    );
    gw.shutdown().await;
}

async fn grid_parts_and_thumbnails(db: Db) {
    let mut gw = funded(Gateway::start(db, vec![sim()], fast_config()).await).await;
    let task = stored_imagine(&gw, "four red foxes").await;
    let id = task["id"].as_str().unwrap().to_string();
    let url = task["imageUrl"].as_str().unwrap().to_string();
    let grid = decode(&get(&gw, &url, &[]).await.bytes().await.unwrap());
    assert_eq!(grid.dimensions(), (512, 512));

    // U3 on the simulator: its source quadrant, enlarged.
    let u3 = common::button(&task, "U3");
    let up = gw
        .submit(
            "/mj/submit/action",
            json!({"taskId": id, "customId": u3}),
            1,
        )
        .await;
    let upscaled = gw.wait_final(&up).await;
    assert_eq!(upscaled["status"], "SUCCESS", "{upscaled}");
    settled_file(&gw, &up, FileKind::Image).await;
    let u3_image = decode(
        &get(&gw, upscaled["imageUrl"].as_str().unwrap(), &[])
            .await
            .bytes()
            .await
            .unwrap(),
    );

    // Parts are cut from storage: the upstream is gone.
    gw.sims.remove(0).stop().await;
    let part_url = format!("{url}&part=3");
    let first = get(&gw, &part_url, &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "content-type"), "image/png");
    let etag = header(&first, "etag").to_string();
    let part = decode(&first.bytes().await.unwrap());
    assert_eq!(part.dimensions(), (256, 256));
    let quadrant = imageops::crop_imm(&grid, 0, 256, 256, 256).to_image();
    assert!(part == quadrant, "part 3 is not the bottom-left quadrant");
    assert_eq!(u3_image.dimensions(), (2 * part.width(), 2 * part.height()));
    let enlarged = imageops::resize(&part, 512, 512, imageops::FilterType::Triangle);
    assert!(enlarged == u3_image, "U3 is not part 3 enlarged");

    // Cut once: stored beside the image, and served from there with the same tag.
    let derived = gw
        .files
        .path()
        .join(format!("images/tasks/{id}/image.part3.png"));
    let cut_at = std::fs::metadata(&derived).unwrap().modified().unwrap();
    let second = get(&gw, &part_url, &[]).await;
    assert_eq!(header(&second, "etag"), etag);
    assert_eq!(decode(&second.bytes().await.unwrap()), part);
    assert_eq!(
        std::fs::metadata(&derived).unwrap().modified().unwrap(),
        cut_at
    );
    assert_eq!(
        get(&gw, &part_url, &[("if-none-match", &etag)])
            .await
            .status(),
        304
    );

    let thumb = get(&gw, &format!("{url}&size=128"), &[]).await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(
        decode(&thumb.bytes().await.unwrap()).dimensions(),
        (128, 128)
    );
    let small_part = get(&gw, &format!("{url}&part=2&size=100"), &[]).await;
    let small_part = decode(&small_part.bytes().await.unwrap());
    assert_eq!(small_part.dimensions(), (100, 100));

    for bad in ["part=5", "part=0", "size=8", "size=100000", "size=big"] {
        let response = get(&gw, &format!("{url}&{bad}"), &[]).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    gw.shutdown().await;
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn oversized_images_are_refused_without_buffering(db: Db) {
    let config = mjgate::Config {
        max_image_bytes: 100_000,
        ..fast_config()
    };
    let gw = Gateway::start(db, vec![], config).await;
    let (files, host) = start_file_host(0, BIG).await;
    let channel = add_channel(&gw, &files, true).await;
    let before = rss_kib();
    let id = succeeded_task(
        gw.store(),
        gw.user_id,
        channel,
        &format!("{files}/big.png"),
        None,
    )
    .await;
    let file = settled_file(&gw, &id, FileKind::Image).await;
    assert_eq!(file.state, FileState::Failed);
    assert_eq!(file.attempts, 1, "a too large file is not retried");
    let reason = file.last_error.unwrap();
    assert!(reason.contains("larger than 100000 bytes"), "{reason}");
    let produced = host.produced.load(Ordering::SeqCst);
    let grown = rss_kib().saturating_sub(before);
    eprintln!(
        "oversized image: {} MiB offered, {} KiB read before the cut-off, RSS grew {grown} KiB",
        BIG >> 20,
        produced >> 10
    );
    // The read stopped near the limit (plus what socket buffers held), not at the end.
    assert!(produced < 16 * 1024 * 1024, "{produced} bytes were pulled");
    assert!(grown < 128 * 1024, "the process grew by {grown} KiB");
    assert!(
        !gw.files
            .path()
            .join(format!("images/tasks/{id}/image"))
            .exists()
    );

    // The image URL refuses it too, rather than relaying it.
    assert_eq!(
        get(&gw, &signed(&gw, "image", &id), &[]).await.status(),
        502
    );
    gw.shutdown().await;
}

async fn private_addresses_need_a_local_channel(db: Db) {
    let gw = Gateway::start(db, vec![], fast_config()).await;
    let (files, host) = start_file_host(0, 0).await;
    let public = add_channel(&gw, &files, false).await;
    for url in [
        format!("{files}/small.png"),
        files.replace("127.0.0.1", "localhost") + "/small.png",
        "http://[::1]:9/small.png".to_string(),
    ] {
        let id = succeeded_task(gw.store(), gw.user_id, public, &url, None).await;
        let file = settled_file(&gw, &id, FileKind::Image).await;
        assert_eq!(file.state, FileState::Failed, "{url}");
        assert!(
            file.last_error.as_deref().unwrap().contains("refused"),
            "{url}: {:?}",
            file.last_error
        );
        // Nor is the link fetched to show it.
        assert_eq!(
            get(&gw, &signed(&gw, "image", &id), &[]).await.status(),
            502
        );
    }
    assert_eq!(host.requests.load(Ordering::SeqCst), 0);

    // The same links are fine for a channel marked local, redirects included.
    let local = add_channel(&gw, &files, true).await;
    let id = succeeded_task(
        gw.store(),
        gw.user_id,
        local,
        &format!("{files}/moved.png"),
        None,
    )
    .await;
    let file = settled_file(&gw, &id, FileKind::Image).await;
    assert_eq!(file.state, FileState::Done, "{file:?}");
    assert_eq!(file.content_type.as_deref(), Some("image/png"));
    let served = get(&gw, &signed(&gw, "image", &id), &[]).await;
    assert_eq!(header(&served, "content-type"), "image/png");
    assert_eq!(served.bytes().await.unwrap(), small_png());
    gw.shutdown().await;
}

async fn failed_copies_are_retried(db: Db) {
    let gw = Gateway::start(db, vec![], fast_config()).await;
    let (files, host) = start_file_host(1, 0).await;
    let channel = add_channel(&gw, &files, true).await;
    let id = succeeded_task(
        gw.store(),
        gw.user_id,
        channel,
        &format!("{files}/flaky.png"),
        None,
    )
    .await;
    let file = settled_file(&gw, &id, FileKind::Image).await;
    assert_eq!(file.state, FileState::Done, "{file:?}");
    assert_eq!(file.attempts, 2);
    assert_eq!(host.requests.load(Ordering::SeqCst), 2);
    let served = get(&gw, &signed(&gw, "image", &id), &[]).await;
    assert_eq!(served.bytes().await.unwrap(), small_png());
    gw.shutdown().await;
}

async fn jobs_queued_before_a_start_are_done(db: Db) {
    // The job is a row: queued while no gateway runs (as after a crash), it is done by the
    // next one to start.
    let test_db = common::test_db(db).await;
    let store = mjgate::store::open(&test_db.url).await.unwrap();
    let (files, _host) = start_file_host(0, 0).await;
    let user = mjgate::admin::create_user(&*store, "bob", mjgate::store::Role::User)
        .await
        .unwrap()
        .user;
    let channel = store
        .create_channel(&NewChannel {
            name: "files".to_string(),
            base_url: files.clone(),
            is_local: true,
            ..NewChannel::default()
        })
        .await
        .unwrap();
    let id = succeeded_task(
        &*store,
        user.id,
        channel.id,
        &format!("{files}/small.png"),
        None,
    )
    .await;

    // A claim whose worker died holds the job only until its lease runs out.
    let now = now_ms();
    let claimed = store
        .claim_file_copies(now, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .claim_file_copies(now + 1, now + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let pending = store
        .task_file(&id, FileKind::Image)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((pending.state, pending.attempts), (FileState::Pending, 1));
    let retaken = store
        .claim_file_copies(now + 60_000, now, 10)
        .await
        .unwrap();
    assert_eq!(retaken.len(), 1);
    // The dead worker's late report is ignored. The new claim's lease has run out too by the
    // time the gateway below starts, which then takes the job up.
    let stale = mjgate::store::StoredFile {
        storage_key: "nowhere".to_string(),
        content_type: "image/png".to_string(),
        size: 1,
        etag: "\"x\"".to_string(),
    };
    assert!(
        !store
            .finish_file_copy(&claimed[0], &stale, now)
            .await
            .unwrap()
    );

    let data = tempfile::tempdir().unwrap();
    let config = mjgate::Config {
        data_dir: data.path().to_path_buf(),
        ..fast_config()
    };
    let state = mjgate::AppState::with_store(config, store.clone())
        .await
        .unwrap();
    let app = mjgate::App::from_state(state).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let file = loop {
        let file = store
            .task_file(&id, FileKind::Image)
            .await
            .unwrap()
            .unwrap();
        if file.state != FileState::Pending {
            break file;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never copied: {file:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(file.state, FileState::Done, "{file:?}");
    assert_eq!(file.attempts, 3);
    let copied = std::fs::read(data.path().join(format!("images/tasks/{id}/image"))).unwrap();
    assert_eq!(copied, small_png());
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

async fn videos_are_copied_too(db: Db) {
    let gw = Gateway::start(db, vec![], fast_config()).await;
    let (files, _host) = start_file_host(0, 0).await;
    let channel = add_channel(&gw, &files, true).await;
    let id = succeeded_task(
        gw.store(),
        gw.user_id,
        channel,
        &format!("{files}/small.png"),
        Some(&format!("{files}/clip.mp4")),
    )
    .await;
    let video = settled_file(&gw, &id, FileKind::Video).await;
    assert_eq!(video.state, FileState::Done, "{video:?}");
    assert_eq!(video.content_type.as_deref(), Some("video/mp4"));

    let task = gw.fetch(&id).await;
    let url = task["videoUrl"].as_str().unwrap();
    assert_eq!(url, signed(&gw, "video", &id));
    let served = get(&gw, url, &[]).await;
    assert_eq!(header(&served, "content-type"), "video/mp4");
    assert_eq!(served.bytes().await.unwrap(), fake_mp4());
    let part = get(&gw, url, &[("range", "bytes=4-11")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(&part.bytes().await.unwrap()[..], b"ftypmp42");
    gw.shutdown().await;
}

async fn concurrent_claims_never_share_a_job(db: Db) {
    // Several workers (or gateway processes) claiming at once split the jobs between them.
    let test_db = common::test_db(db).await;
    let store = mjgate::store::open(&test_db.url).await.unwrap();
    let user = mjgate::admin::create_user(&*store, "carol", mjgate::store::Role::User)
        .await
        .unwrap()
        .user;
    let channel = store
        .create_channel(&NewChannel {
            name: "nowhere".to_string(),
            base_url: "http://127.0.0.1:9".to_string(),
            is_local: true,
            ..NewChannel::default()
        })
        .await
        .unwrap();
    let mut queued = Vec::new();
    for n in 0..12 {
        let url = format!("http://127.0.0.1:9/{n}.png");
        queued.push(succeeded_task(&*store, user.id, channel.id, &url, None).await);
    }
    let now = now_ms() + 1;
    let claims = futures_util::future::join_all(
        (0..6).map(|_| store.claim_file_copies(now, now + 60_000, 5)),
    )
    .await;
    let mut claimed: Vec<String> = claims
        .into_iter()
        .flat_map(|c| c.unwrap().into_iter().map(|f| f.mj_id))
        .collect();
    claimed.sort();
    queued.sort();
    assert_eq!(claimed, queued, "every job claimed exactly once");
}
