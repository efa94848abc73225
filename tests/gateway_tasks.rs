//! The task API end to end: gateway plus simulator, over HTTP, on both databases.

mod common;

use common::{Db, Gateway, button, fast_config, png_data_url};
use mjgate::sim::{Pace, SimConfig};
use serde_json::{Value, json};
use std::time::Duration;

/// Enough quota for every task of a test.
const PLENTY: i64 = 100 * 50_000;

async fn funded(gw: Gateway) -> Gateway {
    gw.store().top_up(gw.user_id, PLENTY).await.unwrap();
    gw
}

fn sim(step_ms: u64) -> SimConfig {
    SimConfig {
        pace: Pace::Step(Duration::from_millis(step_ms)),
        banned_words: vec!["forbiddenword".to_string()],
        concurrency: 10,
        ..SimConfig::default()
    }
}

fn percent(task: &Value) -> u32 {
    task["progress"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

async fn imagine_to_upscale(db: Db) {
    let gw = funded(Gateway::start(db, vec![sim(120)], fast_config()).await).await;
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a red fox", "state": "s-1"}),
            1,
        )
        .await;
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_digit()));

    let first = gw.fetch(&id).await;
    assert_eq!(first["status"], "SUBMITTED", "{first}");
    assert_eq!(first["action"], "IMAGINE");
    assert_eq!(first["state"], "s-1");

    let states = gw.wait_for(&id, |t| t["status"] == "SUCCESS").await;
    let progress: Vec<u32> = states.iter().map(percent).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        states
            .iter()
            .any(|t| t["status"] == "IN_PROGRESS" && percent(t) > 0 && percent(t) < 100),
        "progress was never seen rising: {progress:?}"
    );
    let done = states.last().unwrap();
    assert_eq!(done["progress"], "100%");
    assert!(done["finishTime"].as_i64().unwrap() >= done["startTime"].as_i64().unwrap());
    assert_eq!(done["buttons"].as_array().unwrap().len(), 9, "{done}");
    assert!(
        done["properties"].get("discordInstanceId").is_none(),
        "{done}"
    );
    assert!(done["properties"]["finalPrompt"].is_string());

    // The image URL is the gateway's, signed, and serves the PNG.
    let image_url = done["imageUrl"].as_str().unwrap();
    assert!(
        image_url.starts_with(&format!("{}/mj/image/{id}?sig=", gw.base)),
        "{image_url}"
    );
    let image = gw.http.get(image_url).send().await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.headers()["x-content-type-options"], "nosniff");
    let bytes = image.bytes().await.unwrap();
    assert!(image::load_from_memory(&bytes).is_ok());
    let forged = image_url.replace("sig=", "sig=00");
    assert_eq!(gw.http.get(forged).send().await.unwrap().status(), 403);

    // U2 by its button.
    let u2 = button(done, "U2");
    let up = gw
        .submit(
            "/mj/submit/action",
            json!({"taskId": id, "customId": u2}),
            1,
        )
        .await;
    let upscaled = gw.wait_final(&up).await;
    assert_eq!(upscaled["action"], "UPSCALE");
    assert_eq!(upscaled["status"], "SUCCESS", "{upscaled}");
    assert!(
        upscaled["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["label"] == "Vary (Region)")
    );

    // The same through the classic forms.
    let up1 = gw
        .submit(
            "/mj/submit/change",
            json!({"taskId": id, "action": "UPSCALE", "index": 1}),
            1,
        )
        .await;
    let var1 = gw
        .submit(
            "/mj/submit/simple-change",
            json!({"content": format!("{id} V1")}),
            1,
        )
        .await;
    assert_eq!(gw.wait_final(&up1).await["action"], "UPSCALE");
    let varied = gw.wait_final(&var1).await;
    assert_eq!(varied["action"], "VARIATION");
    assert_eq!(varied["status"], "SUCCESS");

    // Acting on an unfinished or foreign task, or with a button it does not have.
    let (status, answer) = gw
        .post(
            "/mj/submit/action",
            json!({"taskId": id, "customId": "MJ::JOB::upsample::1::0000"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(21)),
        "{answer}"
    );
    let (status, answer) = gw
        .post(
            "/mj/submit/action",
            json!({"taskId": id, "customId": "MJ::Nonsense"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(21)),
        "{answer}"
    );
    gw.shutdown().await;
}

async fn other_actions(db: Db) {
    let gw = funded(Gateway::start(db, vec![sim(10)], fast_config()).await).await;
    let red = png_data_url([200, 30, 30]);
    let blue = png_data_url([30, 30, 200]);

    let (status, answer) = gw
        .post("/mj/submit/blend", json!({"base64Array": [red]}))
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(21)),
        "{answer}"
    );
    assert!(
        answer["description"]
            .as_str()
            .unwrap()
            .contains("base64Array")
    );
    let blend = gw
        .submit(
            "/mj/submit/blend",
            json!({"base64Array": [red, blue], "dimensions": "LANDSCAPE"}),
            1,
        )
        .await;

    let describe = gw
        .submit("/mj/submit/describe", json!({"base64": red}), 1)
        .await;
    let shorten = gw
        .submit(
            "/mj/submit/shorten",
            json!({"prompt": "a very long and winding prompt about a cat"}),
            1,
        )
        .await;
    let swap = gw
        .submit(
            "/mj/insight-face/swap",
            json!({"sourceBase64": red, "targetBase64": blue}),
            1,
        )
        .await;

    let blended = gw.wait_final(&blend).await;
    assert_eq!(
        (blended["action"].as_str(), blended["status"].as_str()),
        (Some("BLEND"), Some("SUCCESS"))
    );
    let described = gw.wait_final(&describe).await;
    assert_eq!(described["status"], "SUCCESS", "{described}");
    let prompts = described["prompt"].as_str().unwrap();
    for n in ["1️⃣", "2️⃣", "3️⃣", "4️⃣"] {
        assert!(prompts.contains(n), "{prompts}");
    }
    let shortened = gw.wait_final(&shorten).await;
    assert_eq!(
        (shortened["action"].as_str(), shortened["status"].as_str()),
        (Some("SHORTEN"), Some("SUCCESS"))
    );
    let swapped = gw.wait_final(&swap).await;
    assert_eq!(
        (swapped["action"].as_str(), swapped["status"].as_str()),
        (Some("SWAP_FACE"), Some("SUCCESS"))
    );

    let (status, answer) = gw
        .post(
            "/mj/submit/upload-discord-images",
            json!({"base64Array": [red, blue]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let urls = answer["result"].as_array().unwrap();
    assert_eq!(urls.len(), 2);
    let uploaded = gw.http.get(urls[0].as_str().unwrap()).send().await.unwrap();
    assert_eq!(uploaded.status(), 200);

    let (status, seed) = gw.get(&format!("/mj/task/{blend}/image-seed")).await;
    assert_eq!((status, seed["code"].as_i64()), (200, Some(1)), "{seed}");
    assert!(
        seed["result"].as_str().unwrap().parse::<u64>().is_ok(),
        "{seed}"
    );

    // list-by-condition answers only with the caller's tasks.
    let bob = gw.key_for("bob").await;
    let bob_id = gw.store().user_by_name("bob").await.unwrap().unwrap().id;
    gw.store().top_up(bob_id, PLENTY).await.unwrap();
    let bobs = {
        let (status, answer) = gw
            .post_as(&bob, "/mj/submit/imagine", json!({"prompt": "bob's cat"}))
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["result"].as_str().unwrap().to_string()
    };
    let (status, list) = gw
        .post(
            "/mj/task/list-by-condition",
            json!({"ids": [blend, bobs, "1234567890123456"]}),
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![blend.as_str()]);
    let (status, _) = gw.get(&format!("/mj/task/{bobs}/fetch")).await;
    assert_eq!(status, 404);
    let (status, mine) = gw.get("/mj/task/list").await;
    assert_eq!(status, 200);
    // blend, describe, shorten, swap and the (charged) upload.
    assert_eq!(mine.as_array().unwrap().len(), 5, "{mine}");
    gw.shutdown().await;
}

async fn vary_region_needs_a_modal(db: Db) {
    let gw = funded(Gateway::start(db, vec![sim(10)], fast_config()).await).await;
    let grid = gw
        .submit("/mj/submit/imagine", json!({"prompt": "a castle"}), 1)
        .await;
    let grid = gw.wait_final(&grid).await;
    let up = gw
        .submit(
            "/mj/submit/action",
            json!({"taskId": grid["id"], "customId": button(&grid, "U1")}),
            1,
        )
        .await;
    let up = gw.wait_final(&up).await;

    let region = button(&up, "Vary (Region)");
    let (status, answer) = gw
        .post(
            "/mj/submit/action",
            json!({"taskId": up["id"], "customId": region}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["code"], 21, "{answer}");
    assert_eq!(answer["description"], "Waiting for window confirm");
    let modal_id = answer["result"].as_str().unwrap().to_string();
    assert_eq!(gw.fetch(&modal_id).await["status"], "MODAL");

    let (status, answer) = gw
        .post(
            "/mj/submit/modal",
            json!({"taskId": modal_id, "prompt": "a dragon"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(21)),
        "mask is required: {answer}"
    );
    let mask = png_data_url([255, 255, 255]);
    let (status, answer) = gw
        .post(
            "/mj/submit/modal",
            json!({"taskId": modal_id, "prompt": "a dragon", "maskBase64": mask}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (200, Some(1)),
        "{answer}"
    );
    let done = gw.wait_final(&modal_id).await;
    assert_eq!(
        (done["action"].as_str(), done["status"].as_str()),
        (Some("VARIATION"), Some("SUCCESS")),
        "{done}"
    );
    gw.shutdown().await;
}

async fn refusals_and_failures(db: Db) {
    let gw = funded(Gateway::start(db, vec![sim(10)], fast_config()).await).await;
    let imagine = format!("{}/mj/submit/imagine", gw.base);

    let none = gw
        .http
        .post(&imagine)
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["code"], 21);
    let (status, _) = gw
        .post_as("sk-wrong", "/mj/submit/imagine", json!({"prompt": "x"}))
        .await;
    assert_eq!(status, 401);
    let other_forms = gw
        .http
        .post(&imagine)
        .header("mj-api-secret", &gw.key)
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_forms.status(), 200);

    let malformed = gw
        .http
        .post(&imagine)
        .bearer_auth(&gw.key)
        .header("content-type", "application/json")
        .body("{\"prompt\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], 21, "{body}");
    assert!(
        body["description"].as_str().unwrap().contains("JSON"),
        "{body}"
    );

    let (status, answer) = gw
        .post(
            "/mj/submit/imagine",
            json!({"prompt": "a forbiddenword here"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(21)),
        "{answer}"
    );
    assert_eq!(
        answer["properties"]["bannedWord"], "forbiddenword",
        "{answer}"
    );

    let (status, answer) = gw.post("/mj/submit/imagine", json!({"prompt": "  "})).await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(21)),
        "{answer}"
    );
    let (status, answer) = gw
        .post(
            "/mj/submit/imagine",
            json!({"prompt": "x", "botType": "DALLE"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(21)),
        "{answer}"
    );

    let failing = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "this will sim-fail"}),
            1,
        )
        .await;
    let failed = gw.wait_final(&failing).await;
    assert_eq!(failed["status"], "FAILURE");
    assert!(
        !failed["failReason"].as_str().unwrap_or_default().is_empty(),
        "{failed}"
    );

    let forgotten = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "please sim-forget me"}),
            1,
        )
        .await;
    let lost = gw.wait_final(&forgotten).await;
    assert_eq!(lost["status"], "FAILURE");
    assert!(
        lost["failReason"]
            .as_str()
            .unwrap()
            .contains("no longer knows"),
        "{lost}"
    );
    gw.shutdown().await;
}

async fn upstream_sees_only_channel_secrets(db: Db) {
    let gw = funded(Gateway::start(db, vec![sim(10)], fast_config()).await).await;
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a quiet lake", "notifyHook": "https://client.example/hook"}),
            1,
        )
        .await;
    let done = gw.wait_final(&id).await;
    gw.submit(
        "/mj/submit/action",
        json!({"taskId": id, "customId": button(&done, "U3")}),
        1,
    )
    .await;
    let requests = gw.sims[0].requests();
    assert!(requests.len() >= 3, "{}", requests.len());
    for r in &requests {
        assert_eq!(
            r.api_secret.as_deref(),
            Some("secret-0"),
            "{} {}",
            r.method,
            r.path
        );
        assert!(
            r.authorization.is_none(),
            "{} carried Authorization",
            r.path
        );
        let body = r.body.as_ref().map(Value::to_string).unwrap_or_default();
        assert!(
            !body.contains(&gw.key),
            "the client's key went upstream in {}",
            r.path
        );
        assert!(
            !body.contains("client.example"),
            "the client's hook went upstream in {}",
            r.path
        );
    }
    // The action named the upstream's id of the parent, not ours.
    let action = requests
        .iter()
        .find(|r| r.path.ends_with("/submit/action"))
        .unwrap();
    let parent = action.body.as_ref().unwrap()["taskId"].as_str().unwrap();
    assert_ne!(parent, id);
    gw.shutdown().await;
}

both_backends!(
    imagine_to_upscale,
    other_actions,
    vary_region_needs_a_modal,
    refusals_and_failures,
    upstream_sees_only_channel_secrets,
);
