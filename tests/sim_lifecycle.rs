//! The simulator over time: lifecycle and queues, notifyHook calls, the images it draws,
//! and its faults (issue points 3, 4, 7 and 8).

mod common;

use common::hooks::HookReceiver;
use common::sim_client::SimClient;
use common::{button, png_data_url};
use image::imageops::{self, FilterType};
use mjgate::sim::{Faults, Pace, SimConfig};
use serde_json::{Value, json};
use std::time::Duration;

fn paced(step_ms: u64) -> SimConfig {
    SimConfig {
        pace: Pace::Step(Duration::from_millis(step_ms)),
        concurrency: 10,
        ..SimConfig::default()
    }
}

fn percent(task: &Value) -> u64 {
    task["progress"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

#[tokio::test]
async fn tasks_move_through_the_real_lifecycle_and_call_their_hook() {
    let sim = SimClient::start(paced(30)).await;
    let hook = HookReceiver::start().await;
    let id = sim
        .submit_id(
            "/mj/submit/imagine",
            json!({"prompt": "a red fox", "notifyHook": hook.url, "state": "s1"}),
        )
        .await;
    let calls = hook.wait_for(|t| t["status"] == "SUCCESS").await;
    let steps: Vec<(String, String)> = calls
        .iter()
        .map(|t| {
            (
                t["status"].as_str().unwrap().to_string(),
                t["progress"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("SUBMITTED", "0%"),
        ("IN_PROGRESS", "15%"),
        ("IN_PROGRESS", "31%"),
        ("IN_PROGRESS", "46%"),
        ("IN_PROGRESS", "62%"),
        ("IN_PROGRESS", "78%"),
        ("IN_PROGRESS", "93%"),
        ("SUCCESS", "100%"),
    ]
    .iter()
    .map(|(s, p)| (s.to_string(), p.to_string()))
    .collect();
    assert_eq!(steps, expected, "every change reaches the hook, in order");
    assert!(
        calls
            .iter()
            .all(|t| t["id"] == id.as_str() && t["state"] == "s1")
    );

    let done = sim.fetch(&id).await;
    let (start, finish) = (
        done["startTime"].as_i64().unwrap(),
        done["finishTime"].as_i64().unwrap(),
    );
    assert!(
        start >= done["submitTime"].as_i64().unwrap()
            && finish > start
            && start > 1_700_000_000_000
    );
    // Previews while it ran, the final grid after.
    let preview = calls[3]["imageUrl"].as_str().unwrap();
    assert!(preview.contains("preview_46_"), "{preview}");
    assert_ne!(done["imageUrl"], calls[3]["imageUrl"]);
    sim.sim.stop().await;
}

#[tokio::test]
async fn slots_then_queue_then_refusal() {
    let sim = SimClient::start(SimConfig {
        pace: Pace::Step(Duration::from_millis(40)),
        concurrency: 2,
        queue_size: 2,
        ..SimConfig::default()
    })
    .await;
    let mut answers = Vec::new();
    for n in 0..5 {
        let (_, answer) = sim
            .post("/mj/submit/imagine", json!({"prompt": format!("cat {n}")}))
            .await;
        answers.push(answer);
    }
    let codes: Vec<i64> = answers
        .iter()
        .map(|a| a["code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [1, 1, 22, 22, 23]);
    assert_eq!(answers[2]["description"], "排队中，前面还有1个任务");
    assert_eq!(answers[3]["properties"]["numberOfQueues"], 2);
    assert_eq!(answers[4]["description"], "队列已满，请稍后尝试");
    assert!(answers[4]["result"].is_null());

    let queued = answers[3]["result"].as_str().unwrap();
    assert_eq!(sim.fetch(queued).await["status"], "NOT_START");
    let states = sim.wait_for(queued, |t| t["status"] == "SUCCESS").await;
    let first = sim.fetch(answers[0]["result"].as_str().unwrap()).await;
    let queued_start = states.last().unwrap()["startTime"].as_i64().unwrap();
    assert!(
        queued_start >= first["finishTime"].as_i64().unwrap(),
        "a queued task starts when a slot frees"
    );
    sim.sim.stop().await;
}

#[tokio::test]
async fn images_are_real_and_follow_the_buttons() {
    let sim = SimClient::start(paced(1)).await;
    let a = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "a quiet lake"}))
        .await;
    let b = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "a quiet lake"}))
        .await;
    let (a, b) = (sim.wait_final(&a).await, sim.wait_final(&b).await);
    let url = a["imageUrl"].as_str().unwrap();
    let hash = a["properties"]["messageHash"].as_str().unwrap();
    assert!(url.ends_with(&format!("_{hash}.png")), "{url}");
    let bytes = sim.download(url).await;
    assert_eq!(
        image::guess_format(&bytes).unwrap(),
        image::ImageFormat::Png
    );
    let grid = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(
        grid,
        sim.image(b["imageUrl"].as_str().unwrap()).await,
        "the same prompt draws the same grid"
    );
    let (w, h) = (grid.width() / 2, grid.height() / 2);
    let quadrants: Vec<image::RgbImage> = [(0, 0), (w, 0), (0, h), (w, h)]
        .iter()
        .map(|&(x, y)| imageops::crop_imm(&grid, x, y, w, h).to_image())
        .collect();
    for i in 0..4 {
        for j in i + 1..4 {
            assert_ne!(
                quadrants[i], quadrants[j],
                "quadrants {i} and {j} look alike"
            );
        }
    }

    // U3 is quadrant 3 enlarged.
    let up = sim
        .submit_id(
            "/mj/submit/action",
            json!({"taskId": a["id"], "customId": button(&a, "U3")}),
        )
        .await;
    let up = sim.wait_final(&up).await;
    let upscaled = sim.image(up["imageUrl"].as_str().unwrap()).await;
    assert_eq!(upscaled.dimensions(), (w * 2, h * 2));
    let back = imageops::resize(&upscaled, w, h, FilterType::Triangle);
    assert!(
        mean_difference(&back, &quadrants[2]) < 8.0,
        "U3 is not quadrant 3"
    );
    assert!(mean_difference(&back, &quadrants[0]) > 8.0);

    // Zoom keeps the canvas, pan extends it, variations differ from their source.
    let zoom = sim
        .submit_id(
            "/mj/submit/action",
            json!({"taskId": up["id"], "customId": button(&up, "Zoom Out 2x")}),
        )
        .await;
    let pan_left = button(&up, "⬅️");
    let pan = sim
        .submit_id(
            "/mj/submit/action",
            json!({"taskId": up["id"], "customId": pan_left}),
        )
        .await;
    let vary = sim
        .submit_id(
            "/mj/submit/action",
            json!({"taskId": a["id"], "customId": button(&a, "V1")}),
        )
        .await;
    let zoomed = sim
        .image(sim.wait_final(&zoom).await["imageUrl"].as_str().unwrap())
        .await;
    let panned = sim
        .image(sim.wait_final(&pan).await["imageUrl"].as_str().unwrap())
        .await;
    let varied = sim
        .image(sim.wait_final(&vary).await["imageUrl"].as_str().unwrap())
        .await;
    assert_eq!(zoomed.dimensions(), (w * 2, h * 2));
    let aspect = f64::from(panned.width()) / f64::from(panned.height());
    assert!(
        (aspect - 1.5).abs() < 0.02,
        "pan left widens the canvas by half: {aspect}"
    );
    assert_ne!(varied, grid);

    // Blend takes its inputs' colours and the asked dimensions; swap face composites.
    let (red, blue) = (png_data_url([220, 20, 20]), png_data_url([20, 20, 220]));
    let blend = sim
        .submit_id(
            "/mj/submit/blend",
            json!({"base64Array": [red, blue], "dimensions": "PORTRAIT"}),
        )
        .await;
    let swap = sim
        .submit_id(
            "/mj/insight-face/swap",
            json!({"sourceBase64": red, "targetBase64": blue}),
        )
        .await;
    let blended = sim
        .image(sim.wait_final(&blend).await["imageUrl"].as_str().unwrap())
        .await;
    assert!(
        blended.height() > blended.width(),
        "PORTRAIT is taller than wide"
    );
    let p = blended.get_pixel(5, 5).0;
    assert!(
        p[1] < 60 && p[0] > 60 && p[2] > 60,
        "a mix of red and blue: {p:?}"
    );
    let swapped = sim
        .image(sim.wait_final(&swap).await["imageUrl"].as_str().unwrap())
        .await;
    let (cx, cy) = (swapped.width() / 2, swapped.height() * 2 / 5);
    assert!(
        swapped.get_pixel(cx, cy).0[0] > 150,
        "the source sits in the middle"
    );
    assert!(swapped.get_pixel(2, 2).0[2] > 150, "the target around it");
    sim.sim.stop().await;
}

fn mean_difference(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[tokio::test]
async fn faults_on_demand() {
    let sim = SimClient::start(SimConfig {
        faults: Faults {
            fail_word: "doomed".to_string(),
            ..Faults::default()
        },
        ..paced(5)
    })
    .await;
    let failing = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "a doomed ship"}))
        .await;
    let stalled = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "sim-stall please"}))
        .await;
    let forgotten = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "sim-forget this"}))
        .await;

    let failed = sim.wait_final(&failing).await;
    assert_eq!(failed["status"], "FAILURE");
    assert!(!failed["failReason"].as_str().unwrap().is_empty());
    assert!(percent(&failed) < 100);

    sim.wait_for(&stalled, |t| t["status"] == "IN_PROGRESS")
        .await;
    // A task submitted after the stalled one finishes; the stalled one has not moved.
    let later = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "later"}))
        .await;
    sim.wait_final(&later).await;
    let still = sim.fetch(&stalled).await;
    assert_eq!(
        (still["status"].as_str(), percent(&still)),
        (Some("IN_PROGRESS"), 15)
    );

    let (_, list) = sim
        .post(
            "/mj/task/list-by-condition",
            json!({"ids": [forgotten, later]}),
        )
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "the forgotten task is not listed"
    );

    let (status, _) = sim
        .post("/mj/submit/imagine", json!({"prompt": "sim-500 now"}))
        .await;
    assert_eq!(status, 500);
    let hung = sim
        .http
        .post(format!("{}/mj/submit/imagine", sim.base))
        .header("mj-api-secret", common::sim_client::SECRET)
        .timeout(Duration::from_millis(300))
        .json(&json!({"prompt": "sim-hang now"}))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());

    // Switches at run time, over HTTP as another process would set them.
    let set = sim
        .http
        .post(format!("{}/sim/faults", sim.base))
        .header("mj-api-secret", common::sim_client::SECRET)
        .json(&json!({"forgetAll": true, "http500All": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let (_, list) = sim
        .post("/mj/task/list-by-condition", json!({"ids": [later]}))
        .await;
    assert_eq!(list, json!([]));
    let (status, _) = sim
        .post("/mj/submit/imagine", json!({"prompt": "anything"}))
        .await;
    assert_eq!(status, 500);
    sim.sim.set_faults(Faults::default());
    let (_, list) = sim
        .post("/mj/task/list-by-condition", json!({"ids": [later]}))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    sim.sim.stop().await;
}
