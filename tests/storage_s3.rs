//! Image storage in an S3-compatible bucket, against a real S3 server: moto's, which the
//! suite starts itself (`.ci/run` installs it). Skipped with a notice where it cannot run.

mod common;

use common::files::{add_channel, start_file_host, succeeded_task};
use common::{Db, Gateway, fast_config};
use mjgate::config::StorageKind;
use mjgate::sim::{Pace, SimConfig};
use mjgate::store::{FileKind, FileState};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU16;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

const BUCKET: &str = "mjgate-test";

/// A moto S3 server, killed when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where moto's server is: `MJGATE_TEST_MOTO_SERVER`, the venv `.ci/run` makes, or `PATH`.
fn moto_server() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("MJGATE_TEST_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var("HOME").ok()?;
    let venv = PathBuf::from(home).join(".cache/mjgate/moto/bin/moto_server");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.exists())
    })
}

async fn start_s3() -> Option<S3Server> {
    let Some(binary) = moto_server() else {
        eprintln!("skipped: no moto_server (run .ci/run, or set MJGATE_TEST_MOTO_SERVER)");
        return None;
    };
    let port = free_port_outside_ephemeral_range();
    let child = match Command::new(&binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipped: cannot start {}: {e}", binary.display());
            return None;
        }
    };
    let mut server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Only moto's own answer counts: it lists the buckets.
        if let Ok(response) = http.get(&server.endpoint).send().await {
            let body = response.text().await.unwrap_or_default();
            assert!(
                body.contains("ListAllMyBucketsResult"),
                "port {port} answers, but not as moto: {body}"
            );
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            eprintln!("skipped: moto_server exited at start ({status})");
            return None;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "moto_server did not answer in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = http
        .put(format!("{}/{BUCKET}", server.endpoint))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    Some(server)
}

/// A free port that no `bind(0)` of the tests can take while moto starts up (Linux hands
/// those out from 32768 up).
/// Each call of one test process starts from another port, so that two servers started at
/// once do not both find the same one free.
fn free_port_outside_ephemeral_range() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 8 + NEXT.fetch_add(1, SeqCst) * 997;
    (start..30_000)
        .chain(20_000..start)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port from 20000 to 29999")
}

fn s3_config(s3: &S3Server) -> mjgate::Config {
    mjgate::Config {
        storage: StorageKind::S3,
        s3_bucket: Some(BUCKET.to_string()),
        s3_endpoint: Some(s3.endpoint.clone()),
        s3_region: "us-east-1".to_string(),
        s3_access_key_id: Some("testing".to_string()),
        s3_secret_access_key: Some("testing".to_string()),
        s3_path_style: true,
        ..fast_config()
    }
}

/// The object at `key` in the bucket, read from the S3 server through the gateway's own
/// client (moto refuses unsigned reads of private objects).
async fn object(gw: &Gateway, key: &str) -> Option<bytes::Bytes> {
    gw.state.blobs.read(key, u64::MAX).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_live_in_the_bucket() {
    let Some(s3) = start_s3().await else { return };
    let sim = SimConfig {
        pace: Pace::Step(Duration::from_millis(20)),
        ..SimConfig::default()
    };
    let mut gw = Gateway::start(Db::Sqlite, vec![sim], s3_config(&s3)).await;
    gw.store().top_up(gw.user_id, 1_000_000).await.unwrap();
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a bucket of paint"}),
            1,
        )
        .await;
    let task = gw.wait_final(&id).await;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while gw
        .store()
        .task_file(&id, FileKind::Image)
        .await
        .unwrap()
        .is_none_or(|f| f.state == FileState::Pending)
    {
        assert!(tokio::time::Instant::now() < deadline, "never copied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let file = gw
        .store()
        .task_file(&id, FileKind::Image)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(file.state, FileState::Done, "{file:?}");
    let in_bucket = object(&gw, &format!("tasks/{id}/image")).await.unwrap();
    assert!(!gw.files.path().join("images/tasks").exists());

    gw.sims.remove(0).stop().await;
    let url = task["imageUrl"].as_str().unwrap();
    let served = gw.http.get(url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    let etag = served.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(served.bytes().await.unwrap(), in_bucket);

    let part = gw
        .http
        .get(url)
        .header("range", "bytes=8-15")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), in_bucket.slice(8..16));
    let cached = gw
        .http
        .get(url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    let quadrant = gw.http.get(format!("{url}&part=3")).send().await.unwrap();
    assert_eq!(quadrant.status(), 200);
    let quadrant = quadrant.bytes().await.unwrap();
    assert_eq!(
        image::load_from_memory(&quadrant)
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (256, 256)
    );
    let stored_part = object(&gw, &format!("tasks/{id}/image.part3.png")).await;
    assert_eq!(stored_part.as_ref(), Some(&quadrant));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_up_in_parts() {
    // Beyond the write buffer, a copy becomes a multipart upload.
    let Some(s3) = start_s3().await else { return };
    let gw = Gateway::start(Db::Sqlite, vec![], s3_config(&s3)).await;
    let size = 20 * 1024 * 1024;
    let (files, host) = start_file_host(0, size).await;
    let channel = add_channel(&gw, &files, true).await;
    let id = succeeded_task(
        gw.store(),
        gw.user_id,
        channel,
        &format!("{files}/big.png"),
        None,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let file = loop {
        let file = gw
            .store()
            .task_file(&id, FileKind::Image)
            .await
            .unwrap()
            .unwrap();
        if file.state != FileState::Pending {
            break file;
        }
        assert!(tokio::time::Instant::now() < deadline, "never copied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(file.state, FileState::Done, "{file:?}");
    assert_eq!(file.size, Some(size as i64));
    assert_eq!(host.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    let in_bucket = object(&gw, &format!("tasks/{id}/image")).await.unwrap();
    assert_eq!(in_bucket.len() as u64, size);
    let tail = gw
        .http
        .get(common::files::signed(&gw, "image", &id))
        .header("range", "bytes=-1000")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206, "{:?}", tail.headers());
    assert_eq!(
        tail.bytes().await.unwrap(),
        in_bucket.slice(in_bucket.len() - 1000..)
    );
    gw.shutdown().await;
}
