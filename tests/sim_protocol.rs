//! The simulator's protocol, over HTTP: routes, secret, codes and descriptions, buttons,
//! actions, pop-ups, and the text and file routes (issue points 1, 2, 5 and 6).

mod common;

use common::sim_client::{SECRET, SimClient};
use common::{button, png_data_url};
use mjgate::domain::Mode;
use mjgate::sim::SimConfig;
use serde_json::{Value, json};
use std::time::Duration;

fn fast() -> SimConfig {
    SimConfig {
        banned_words: vec!["forbiddenword".to_string()],
        concurrency: 10,
        ..SimConfig::default()
    }
}

fn labels(task: &Value) -> Vec<String> {
    task["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let label = b["label"].as_str().unwrap();
            if label.is_empty() {
                b["emoji"].as_str().unwrap().to_string()
            } else {
                label.to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn secret_and_route_prefixes() {
    let sim = SimClient::start(SimConfig {
        modes: vec![Mode::Fast],
        ..fast()
    })
    .await;
    let imagine = format!("{}/mj/submit/imagine", sim.base);
    for secret in [None, Some("wrong")] {
        let mut request = sim.http.post(&imagine).json(&json!({"prompt": "x"}));
        if let Some(secret) = secret {
            request = request.header("mj-api-secret", secret);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let fetch = sim
        .http
        .get(format!("{}/mj/task/1/fetch", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(fetch.status(), 401);

    // Mode prefixes: an offered mode runs, another answers code 3 like a proxy without such
    // an account, and so does an accountFilter asking for it.
    let fast_id = sim
        .submit_id("/mj-fast/mj/submit/imagine", json!({"prompt": "fast cat"}))
        .await;
    assert_eq!(sim.wait_final(&fast_id).await["status"], "SUCCESS");
    for (path, body) in [
        ("/mj-relax/mj/submit/imagine", json!({"prompt": "slow cat"})),
        (
            "/mj-turbo/mj/submit/imagine",
            json!({"prompt": "quick cat"}),
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "cat", "accountFilter": {"modes": ["RELAX"]}}),
        ),
    ] {
        let answer = sim.submit(path, body, 3).await;
        assert_eq!(answer["description"], "无可用的账号实例");
    }
    let (status, task) = sim.get(&format!("/mj-fast/mj/task/{fast_id}/fetch")).await;
    assert_eq!((status, task["id"].as_str()), (200, Some(fast_id.as_str())));

    // The recorded requests carry what was sent.
    let log = sim.sim.requests();
    assert!(
        log.iter()
            .any(|r| r.path == "/mj-fast/mj/submit/imagine"
                && r.api_secret.as_deref() == Some(SECRET))
    );
    assert!(log.iter().any(|r| r.api_secret.as_deref() == Some("wrong")));
    sim.sim.stop().await;
}

#[tokio::test]
async fn answers_use_the_upstream_codes() {
    let sim = SimClient::start(fast()).await;
    let ok = sim
        .submit("/mj/submit/imagine", json!({"prompt": "a red fox"}), 1)
        .await;
    assert_eq!(ok["description"], "提交成功");
    let id = ok["result"].as_str().unwrap();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );
    assert!(ok["properties"]["discordInstanceId"].is_string(), "{ok}");

    let banned = sim
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a ForbiddenWord cat"}),
            24,
        )
        .await;
    assert_eq!(banned["description"], "可能包含敏感词");
    assert_eq!(banned["properties"]["bannedWord"], "forbiddenword");

    let red = png_data_url([200, 0, 0]);
    for (path, body, reason) in [
        (
            "/mj/submit/imagine",
            json!({"prompt": "  "}),
            "prompt不能为空",
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "x", "botType": "DALLE"}),
            "botType参数错误",
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "x", "base64Array": ["data:image/png;base64,AAAA"]}),
            "base64格式错误",
        ),
        (
            "/mj/submit/blend",
            json!({"base64Array": [red]}),
            "base64List参数错误",
        ),
        (
            "/mj/submit/blend",
            json!({"base64Array": [red, red], "dimensions": "WIDE"}),
            "dimensions参数错误",
        ),
        ("/mj/submit/describe", json!({}), "base64不能为空"),
        (
            "/mj/submit/action",
            json!({"taskId": id}),
            "customId不能为空",
        ),
        (
            "/mj/submit/change",
            json!({"taskId": id, "action": "UPSCALE", "index": 5}),
            "index参数错误",
        ),
        (
            "/mj/insight-face/swap",
            json!({"sourceBase64": red}),
            "targetBase64不能为空",
        ),
    ] {
        let answer = sim.submit(path, body, 4).await;
        assert_eq!(answer["description"], reason, "{path}");
    }
    let unknown = sim
        .submit(
            "/mj/submit/action",
            json!({"taskId": "1234567890123456", "customId": "MJ::JOB::upsample::1::x"}),
            3,
        )
        .await;
    assert_eq!(unknown["description"], "关联任务不存在或已失效");
    let (status, _) = sim.post("/mj/submit/imagine", json!("not an object")).await;
    assert_eq!(status, 400);
    sim.sim.stop().await;
}

#[tokio::test]
async fn buttons_are_the_real_ones_and_actions_do_what_they_say() {
    let sim = SimClient::start(fast()).await;
    let id = sim
        .submit_id(
            "/mj/submit/imagine",
            json!({"prompt": "a castle on a hill"}),
        )
        .await;
    let grid = sim.wait_final(&id).await;
    assert_eq!(
        labels(&grid),
        ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    );
    let hash = grid["properties"]["messageHash"].as_str().unwrap();
    assert_eq!(button(&grid, "U1"), format!("MJ::JOB::upsample::1::{hash}"));
    assert_eq!(
        button(&grid, "V4"),
        format!("MJ::JOB::variation::4::{hash}")
    );
    let reroll = &grid["buttons"][4];
    assert_eq!(
        reroll["customId"],
        format!("MJ::JOB::reroll::0::{hash}::SOLO")
    );
    assert!(
        grid["imageUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("_{hash}.png"))
    );

    // A button the task does not show is refused.
    let foreign = sim
        .submit(
            "/mj/submit/action",
            json!({"taskId": id, "customId": "MJ::JOB::upsample::1::other-hash"}),
            4,
        )
        .await;
    assert_eq!(foreign["description"], "customId参数错误");

    let up = sim
        .submit_id(
            "/mj/submit/action",
            json!({"taskId": id, "customId": button(&grid, "U2")}),
        )
        .await;
    let upscaled = sim.wait_final(&up).await;
    assert_eq!(
        (upscaled["action"].as_str(), upscaled["status"].as_str()),
        (Some("UPSCALE"), Some("SUCCESS"))
    );
    assert_eq!(
        labels(&upscaled),
        [
            "Upscale (Subtle)",
            "Upscale (Creative)",
            "Vary (Subtle)",
            "Vary (Strong)",
            "Vary (Region)",
            "Zoom Out 2x",
            "Zoom Out 1.5x",
            "Custom Zoom",
            "⬅️",
            "➡️",
            "⬆️",
            "⬇️"
        ]
    );
    let up_hash = upscaled["properties"]["messageHash"].as_str().unwrap();
    let custom: Vec<&str> = upscaled["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customId"].as_str().unwrap())
        .collect();
    assert_eq!(
        custom,
        [
            format!("MJ::JOB::upsample_v6_2x_subtle::1::{up_hash}::SOLO"),
            format!("MJ::JOB::upsample_v6_2x_creative::1::{up_hash}::SOLO"),
            format!("MJ::JOB::low_variation::1::{up_hash}::SOLO"),
            format!("MJ::JOB::high_variation::1::{up_hash}::SOLO"),
            format!("MJ::Inpaint::1::{up_hash}::SOLO"),
            format!("MJ::Outpaint::50::1::{up_hash}::SOLO"),
            format!("MJ::Outpaint::75::1::{up_hash}::SOLO"),
            format!("MJ::CustomZoom::{up_hash}"),
            format!("MJ::JOB::pan_left::1::{up_hash}::SOLO"),
            format!("MJ::JOB::pan_right::1::{up_hash}::SOLO"),
            format!("MJ::JOB::pan_up::1::{up_hash}::SOLO"),
            format!("MJ::JOB::pan_down::1::{up_hash}::SOLO"),
        ]
    );

    // Every one-step button runs its action.
    let mut runs = Vec::new();
    for (parent, task, label, action) in [
        (&id, &grid, "V1", "VARIATION"),
        (&id, &grid, "🔄", "REROLL"),
        (&up, &upscaled, "Upscale (Creative)", "UPSCALE"),
        (&up, &upscaled, "Vary (Strong)", "VARIATION"),
        (&up, &upscaled, "Zoom Out 2x", "ZOOM"),
        (&up, &upscaled, "⬅️", "PAN"),
    ] {
        let custom_id = button(task, label);
        let child = sim
            .submit_id(
                "/mj/submit/action",
                json!({"taskId": parent, "customId": custom_id}),
            )
            .await;
        runs.push((child, action));
    }
    // And the classic forms.
    let change = sim
        .submit_id(
            "/mj/submit/change",
            json!({"taskId": id, "action": "UPSCALE", "index": 3}),
        )
        .await;
    let simple = sim
        .submit_id(
            "/mj/submit/simple-change",
            json!({"content": format!("{id} V2")}),
        )
        .await;
    runs.push((change, "UPSCALE"));
    runs.push((simple, "VARIATION"));
    for (child, action) in runs {
        let done = sim.wait_final(&child).await;
        assert_eq!(
            (done["action"].as_str(), done["status"].as_str()),
            (Some(action), Some("SUCCESS")),
            "{done}"
        );
    }
    sim.sim.stop().await;
}

#[tokio::test]
async fn pop_up_buttons_wait_for_their_modal() {
    let sim = SimClient::start(fast()).await;
    let id = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "a lighthouse"}))
        .await;
    let grid = sim.wait_final(&id).await;
    let up = sim
        .submit_id(
            "/mj/submit/action",
            json!({"taskId": id, "customId": button(&grid, "U1")}),
        )
        .await;
    let upscaled = sim.wait_final(&up).await;

    for (label, action) in [("Custom Zoom", "ZOOM"), ("Vary (Region)", "VARIATION")] {
        let answer = sim
            .submit(
                "/mj/submit/action",
                json!({"taskId": up, "customId": button(&upscaled, label)}),
                21,
            )
            .await;
        assert_eq!(answer["description"], "Waiting for window confirm");
        let modal = answer["result"].as_str().unwrap().to_string();
        let waiting = sim.fetch(&modal).await;
        assert_eq!(
            (waiting["status"].as_str(), waiting["action"].as_str()),
            (Some("MODAL"), Some(action))
        );

        if label == "Vary (Region)" {
            let refused = sim
                .submit(
                    "/mj/submit/modal",
                    json!({"taskId": modal, "prompt": "a dragon"}),
                    4,
                )
                .await;
            assert_eq!(refused["description"], "maskBase64不能为空");
        }
        let body = json!({"taskId": modal, "prompt": "a lighthouse --zoom 1.5", "maskBase64": png_data_url([255, 255, 255])});
        let confirmed = sim.submit("/mj/submit/modal", body, 1).await;
        assert_eq!(confirmed["result"], modal.as_str());
        let done = sim.wait_final(&modal).await;
        assert_eq!(done["status"], "SUCCESS", "{done}");
        assert_eq!(labels(&done).len(), 9, "a pop-up job ends in a grid");
    }

    // PicReader on a describe result: a MODAL imagine of the chosen prompt.
    let describe = sim
        .submit_id(
            "/mj/submit/describe",
            json!({"base64": png_data_url([20, 160, 40])}),
        )
        .await;
    let described = sim.wait_final(&describe).await;
    assert_eq!(labels(&described), ["1", "2", "3", "4", "🔄"]);
    let answer = sim
        .submit(
            "/mj/submit/action",
            json!({"taskId": describe, "customId": "MJ::Job::PicReader::2"}),
            21,
        )
        .await;
    let modal = answer["result"].as_str().unwrap().to_string();
    assert_eq!(sim.fetch(&modal).await["action"], "IMAGINE");
    sim.submit("/mj/submit/modal", json!({"taskId": modal}), 1)
        .await;
    let imagined = sim.wait_final(&modal).await;
    assert_eq!(imagined["status"], "SUCCESS");
    // 🔄 describes the same image again.
    let retry = sim
        .submit_id(
            "/mj/submit/action",
            json!({"taskId": describe, "customId": "MJ::Picread::Retry"}),
        )
        .await;
    let again = sim.wait_final(&retry).await;
    assert_eq!(
        (again["action"].as_str(), again["status"].as_str()),
        (Some("DESCRIBE"), Some("SUCCESS")),
        "{again}"
    );
    assert_eq!(again["imageUrl"], described["imageUrl"]);
    let second = described["prompt"]
        .as_str()
        .unwrap()
        .split("\n\n")
        .nth(1)
        .unwrap();
    assert_eq!(
        format!("2️⃣ {}", imagined["prompt"].as_str().unwrap()),
        second
    );
    sim.sim.stop().await;
}

#[tokio::test]
async fn describe_shorten_upload_seed_and_lists() {
    let sim = SimClient::start(fast()).await;
    let describe = sim
        .submit_id(
            "/mj/submit/describe",
            json!({"base64": png_data_url([30, 30, 220])}),
        )
        .await;
    let shorten = sim
        .submit_id(
            "/mj/submit/shorten",
            json!({"prompt": "a very detailed painting of an old harbour at night"}),
        )
        .await;
    let imagine = sim
        .submit_id("/mj/submit/imagine", json!({"prompt": "a seed"}))
        .await;

    let described = sim.wait_final(&describe).await;
    let text = described["prompt"].as_str().unwrap();
    let prompts: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(prompts.len(), 4, "{text}");
    for (prompt, number) in prompts.iter().zip(["1️⃣ ", "2️⃣ ", "3️⃣ ", "4️⃣ "]) {
        assert!(prompt.starts_with(number), "{text}");
    }
    assert!(
        text.contains("blue"),
        "the describe reads the image's colour: {text}"
    );
    sim.download(described["imageUrl"].as_str().unwrap()).await;

    let shortened = sim.wait_final(&shorten).await;
    assert!(
        shortened["prompt"]
            .as_str()
            .unwrap()
            .contains("Shortened prompts"),
        "{shortened}"
    );

    let upload = sim
        .submit(
            "/mj/submit/upload-discord-images",
            json!({"base64Array": [png_data_url([1, 2, 3]), png_data_url([4, 5, 6])]}),
            1,
        )
        .await;
    let urls = upload["result"].as_array().unwrap();
    assert_eq!(urls.len(), 2);
    let first = sim.image(urls[0].as_str().unwrap()).await;
    assert_eq!(first.get_pixel(0, 0).0, [1, 2, 3]);

    sim.wait_final(&imagine).await;
    let (_, seed) = sim.get(&format!("/mj/task/{imagine}/image-seed")).await;
    assert_eq!(seed["code"], 1, "{seed}");
    let number: u64 = seed["result"].as_str().unwrap().parse().unwrap();
    let (_, again) = sim.get(&format!("/mj/task/{imagine}/image-seed")).await;
    assert_eq!(
        again["result"].as_str().unwrap().parse::<u64>().unwrap(),
        number
    );

    let (status, list) = sim
        .post(
            "/mj/task/list-by-condition",
            json!({"ids": [imagine, "1111111111111111", describe]}),
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [imagine.as_str(), describe.as_str()]);
    let (_, all) = sim.get("/mj/task/list").await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    // An unknown task: an empty 200, as midjourney-proxy answers.
    let unknown = sim
        .http
        .get(format!("{}/mj/task/1111111111111111/fetch", sim.base))
        .header("mj-api-secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 200);
    assert!(unknown.bytes().await.unwrap().is_empty());
    sim.sim.stop().await;
}

#[tokio::test]
async fn mjgate_sim_runs_as_its_own_process() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mjgate"))
        .args([
            "sim",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--secret",
            SECRET,
            "--pace",
            "fast",
        ])
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer: Value = loop {
        let sent = http
            .post(format!("{base}/mj/submit/imagine"))
            .header("mj-api-secret", SECRET)
            .json(&json!({"prompt": "a process"}))
            .send()
            .await;
        if let Ok(response) = sent {
            break response.json().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mjgate sim never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer["code"], 1, "{answer}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
