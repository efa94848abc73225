//! Quota: exact charging and refunds, key limits, the task history API, and the ledger check.

mod common;

use common::{Db, Gateway, fast_config};
use futures_util::future::join_all;
use mjgate::admin;
use mjgate::sim::{Pace, SimConfig};
use mjgate::store::Role;
use serde_json::{Value, json};
use std::time::Duration;

const IMAGINE: i64 = 50_000;

fn roomy_sim() -> SimConfig {
    SimConfig {
        pace: Pace::Step(Duration::from_millis(10)),
        concurrency: 20,
        queue_size: 100,
        banned_words: vec!["forbiddenword".to_string()],
        ..SimConfig::default()
    }
}

async fn balance(gw: &Gateway) -> i64 {
    gw.store()
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap()
        .balance
}

async fn assert_ledger_clean(gw: &Gateway) {
    let problems = gw.store().ledger_check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

async fn concurrent_imagines_never_overdraw(db: Db) {
    let gw = Gateway::start(db, vec![roomy_sim()], fast_config()).await;
    gw.store().top_up(gw.user_id, 10 * IMAGINE).await.unwrap();
    let answers = join_all(
        (0..50).map(|i| gw.post("/mj/submit/imagine", json!({"prompt": format!("cat {i}")}))),
    )
    .await;
    let accepted = answers
        .iter()
        .filter(|(s, a)| *s == 200 && a["code"] == 1)
        .count();
    let refused = answers
        .iter()
        .filter(|(s, a)| *s == 403 && a["code"] == 25)
        .count();
    assert_eq!((accepted, refused), (10, 40), "{answers:?}");
    assert_eq!(balance(&gw).await, 0);
    assert_ledger_clean(&gw).await;
    gw.shutdown().await;
}

async fn failures_are_refunded_once(db: Db) {
    let gw = Gateway::start(db, vec![roomy_sim()], fast_config()).await;
    gw.store().top_up(gw.user_id, 3 * IMAGINE).await.unwrap();

    // Refused upstream: given back at once.
    let (status, answer) = gw
        .post("/mj/submit/imagine", json!({"prompt": "forbiddenword"}))
        .await;
    assert_eq!((status, answer["code"].as_i64()), (400, Some(21)));
    assert_eq!(balance(&gw).await, 3 * IMAGINE);

    // Fails upstream: refunded once, however many polls see it and race.
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "sim-fail please"}),
            1,
        )
        .await;
    assert_eq!(balance(&gw).await, 2 * IMAGINE);
    let failed = gw.wait_final(&id).await;
    assert_eq!(failed["status"], "FAILURE");
    // Polls (one of them holds the channel's lease, the others skip) and direct failures,
    // racing.
    let polls = (0..4).map(|_| mjgate::workers::poller::poll_once(&gw.state));
    let fails = (0..4).map(|_| mjgate::relay::lifecycle::fail_task(&gw.state, &id, "race"));
    let (polls, fails) = tokio::join!(join_all(polls), join_all(fails));
    for result in polls {
        result.unwrap();
    }
    for result in fails {
        assert!(result.unwrap().is_none(), "a final task stays as it is");
    }
    let again = mjgate::relay::lifecycle::fail_task(&gw.state, &id, "again")
        .await
        .unwrap();
    assert!(again.is_none());
    assert_eq!(balance(&gw).await, 3 * IMAGINE);

    // Four failures of one running task racing: one of them ends it and refunds it.
    let stalled = gw
        .submit("/mj/submit/imagine", json!({"prompt": "sim-stall"}), 1)
        .await;
    gw.wait_for(&stalled, |t| t["status"] == "IN_PROGRESS")
        .await;
    assert_eq!(balance(&gw).await, 2 * IMAGINE);
    let fails = (0..4).map(|_| mjgate::relay::lifecycle::fail_task(&gw.state, &stalled, "race"));
    let ended = join_all(fails)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(ended, 1);
    assert_eq!(balance(&gw).await, 3 * IMAGINE);

    // A pop-up task is free until its pop-up is submitted.
    let grid = gw
        .submit("/mj/submit/imagine", json!({"prompt": "a tower"}), 1)
        .await;
    let grid = gw.wait_final(&grid).await;
    let u1 = custom_id(&grid, "U1");
    let up = gw
        .submit(
            "/mj/submit/action",
            json!({"taskId": grid["id"], "customId": u1}),
            1,
        )
        .await;
    let up = gw.wait_final(&up).await;
    assert_eq!(balance(&gw).await, 3 * IMAGINE - IMAGINE - 25_000);
    let zoom = custom_id(&up, "Custom Zoom");
    let modal = gw
        .submit(
            "/mj/submit/action",
            json!({"taskId": up["id"], "customId": zoom}),
            21,
        )
        .await;
    assert_eq!(balance(&gw).await, 3 * IMAGINE - IMAGINE - 25_000);
    let (status, answer) = gw
        .post(
            "/mj/submit/modal",
            json!({"taskId": modal, "prompt": "a tower --zoom 2"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(balance(&gw).await, 3 * IMAGINE - 2 * IMAGINE - 25_000);
    assert_eq!(gw.wait_final(&modal).await["status"], "SUCCESS");
    assert_ledger_clean(&gw).await;
    gw.shutdown().await;
}

fn custom_id(task: &Value, label: &str) -> String {
    task["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["label"] == label)
        .unwrap_or_else(|| panic!("no {label} in {task}"))["customId"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn key_limits_stop_a_key(db: Db) {
    let gw = Gateway::start(db, vec![roomy_sim()], fast_config()).await;
    gw.store().top_up(gw.user_id, 100 * IMAGINE).await.unwrap();
    let user = gw.store().user(gw.user_id).await.unwrap().unwrap();
    let limited = admin::create_key(gw.store(), &user, Some(2 * IMAGINE), None)
        .await
        .unwrap()
        .secret;
    for _ in 0..2 {
        let (status, answer) = gw
            .post_as(&limited, "/mj/submit/imagine", json!({"prompt": "x"}))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = gw
        .post_as(&limited, "/mj/submit/imagine", json!({"prompt": "x"}))
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (403, Some(25)),
        "{answer}"
    );
    // The user's other key still works.
    gw.submit("/mj/submit/imagine", json!({"prompt": "y"}), 1)
        .await;
    assert_eq!(balance(&gw).await, 97 * IMAGINE);

    // Disabled and expired keys are refused.
    let expired = admin::create_key(gw.store(), &user, None, Some(1))
        .await
        .unwrap()
        .secret;
    let (status, _) = gw
        .post_as(&expired, "/mj/submit/imagine", json!({"prompt": "x"}))
        .await;
    assert_eq!(status, 401);
    let keys = gw.store().list_keys(Some(user.id)).await.unwrap();
    gw.store().set_key_enabled(keys[0].id, false).await.unwrap();
    let (status, _) = gw.post("/mj/submit/imagine", json!({"prompt": "x"})).await;
    assert_eq!(status, 401);
    assert_ledger_clean(&gw).await;
    gw.shutdown().await;
}

async fn task_history_api(db: Db) {
    let gw = Gateway::start(db, vec![roomy_sim()], fast_config()).await;
    gw.store().top_up(gw.user_id, 100 * IMAGINE).await.unwrap();
    let root = admin::create_user(gw.store(), "root", Role::Admin)
        .await
        .unwrap();
    let owner = gw.store().user(gw.user_id).await.unwrap().unwrap();
    let token = gw.access_token.clone();

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            gw.submit("/mj/submit/imagine", json!({"prompt": format!("p{i}")}), 1)
                .await,
        );
    }
    let bob = gw.key_for("bob").await;
    let bob_id = gw.store().user_by_name("bob").await.unwrap().unwrap().id;
    gw.store().top_up(bob_id, IMAGINE).await.unwrap();
    let (status, _) = gw
        .post_as(&bob, "/mj/submit/imagine", json!({"prompt": "bob"}))
        .await;
    assert_eq!(status, 200);

    let get = |path: String, token: String, user: i64| {
        let http = gw.http.clone();
        let url = format!("{}{path}", gw.base);
        async move {
            let r = http
                .get(url)
                .bearer_auth(token)
                .header("New-Api-User", user.to_string())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };

    let (status, page) = get(
        "/api/mj/self?p=1&page_size=2".into(),
        token.clone(),
        owner.id,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["success"], true);
    let data = &page["data"];
    assert_eq!(
        (
            data["total"].as_i64(),
            data["page"].as_i64(),
            data["page_size"].as_i64()
        ),
        (Some(5), Some(1), Some(2))
    );
    let items = data["items"].as_array().unwrap();
    assert_eq!(
        items[0]["mj_id"].as_str(),
        Some(ids[4].as_str()),
        "newest first"
    );
    assert!(
        items[0].get("user_id").is_none() && items[0].get("channel_id").is_none(),
        "{}",
        items[0]
    );
    assert_eq!(items[0]["quota"], IMAGINE);
    let submit = items[0]["submit_time"].as_i64().unwrap();
    assert!(submit < 100_000_000_000, "seconds, not milliseconds");

    let (_, page3) = get(
        "/api/mj/self?p=3&page_size=2".into(),
        token.clone(),
        owner.id,
    )
    .await;
    assert_eq!(page3["data"]["items"].as_array().unwrap().len(), 1);
    let (_, by_id) = get(
        format!("/api/mj/self?mj_id={}", ids[2]),
        token.clone(),
        owner.id,
    )
    .await;
    assert_eq!(by_id["data"]["total"], 1);
    for range in [
        format!(
            "start_timestamp={}&end_timestamp={}",
            submit - 60,
            submit + 60
        ),
        format!(
            "start_timestamp={}&end_timestamp={}",
            (submit - 60) * 1000,
            (submit + 60) * 1000
        ),
    ] {
        let (_, within) = get(format!("/api/mj/self?{range}"), token.clone(), owner.id).await;
        assert_eq!(within["data"]["total"], 5, "{range}");
    }
    let (_, future) = get(
        format!("/api/mj/self?start_timestamp={}", submit + 3600),
        token.clone(),
        owner.id,
    )
    .await;
    assert_eq!(future["data"]["total"], 0);

    let (status, wrong) = get("/api/mj/self".into(), token.clone(), owner.id + 1).await;
    assert_eq!((status, wrong["success"].as_bool()), (401, Some(false)));
    let (status, _) = get("/api/mj/".into(), token.clone(), owner.id).await;
    assert_eq!(status, 403, "a user on the admin route");

    let (status, all) = get(
        "/api/mj/?page_size=100".into(),
        root.access_token.clone(),
        root.user.id,
    )
    .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["data"]["total"], 6);
    let item = &all["data"]["items"][0];
    assert!(
        item["user_id"].is_i64() && item["channel_id"].is_i64(),
        "{item}"
    );
    let channel = item["channel_id"].as_i64().unwrap();
    let (_, by_channel) = get(
        format!("/api/mj/?channel_id={channel}"),
        root.access_token.clone(),
        root.user.id,
    )
    .await;
    assert_eq!(by_channel["data"]["total"], 6);
    let (_, other_channel) = get(
        format!("/api/mj/?channel_id={}", channel + 1),
        root.access_token.clone(),
        root.user.id,
    )
    .await;
    assert_eq!(other_channel["data"]["total"], 0);
    let (_, bobs) = get(
        format!("/api/mj/?user_id={bob_id}"),
        root.access_token.clone(),
        root.user.id,
    )
    .await;
    assert_eq!(bobs["data"]["total"], 1);
    assert_ledger_clean(&gw).await;
    gw.shutdown().await;
}

async fn admin_api(db: Db) {
    let gw = Gateway::start(db, vec![roomy_sim()], fast_config()).await;
    let root = admin::create_user(gw.store(), "root", Role::Admin)
        .await
        .unwrap();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = gw
            .http
            .request(method, format!("{}{path}", gw.base))
            .bearer_auth(&root.access_token)
            .header("New-Api-User", root.user.id.to_string());
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, created) = call(
        reqwest::Method::POST,
        "/api/user/",
        Some(json!({"name": "zed", "quota": 100000})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let zed = created["data"]["id"].as_i64().unwrap();
    let (_, topped) = call(
        reqwest::Method::POST,
        &format!("/api/user/{zed}/topup"),
        Some(json!({"amount": 50000})),
    )
    .await;
    assert_eq!(topped["data"]["balance"], 150000);
    let (status, key) = call(
        reqwest::Method::POST,
        "/api/key/",
        Some(json!({"user_id": zed, "limit": 50000})),
    )
    .await;
    assert_eq!(status, 200, "{key}");
    let zed_key = key["data"]["key"].as_str().unwrap().to_string();
    let hook_secret = key["data"]["hook_secret"].as_str().unwrap();
    assert!(hook_secret.len() >= 32 && hook_secret != zed_key, "{key}");
    let (status, _) = gw
        .post_as(&zed_key, "/mj/submit/imagine", json!({"prompt": "zed"}))
        .await;
    assert_eq!(status, 200);
    let (_, price) = call(
        reqwest::Method::PUT,
        "/api/price/",
        Some(json!({"action": "UPSCALE", "mode": "TURBO", "price": 1})),
    )
    .await;
    assert_eq!(price["success"], true, "{price}");
    let (status, bad) = call(
        reqwest::Method::PUT,
        "/api/price/",
        Some(json!({"action": "FLY", "price": 1})),
    )
    .await;
    assert_eq!((status, bad["success"].as_bool()), (400, Some(false)));
    let (_, users) = call(reqwest::Method::GET, "/api/user/", None).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 3);
    let (status, channel) = call(
        reqwest::Method::POST,
        "/api/channel/",
        Some(json!({"name": "calling", "base_url": "http://127.0.0.1:9", "callbacks": true})),
    )
    .await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(channel["data"]["callbacks"], true);
    let (_, channels) = call(reqwest::Method::GET, "/api/channel/", None).await;
    assert!(channels["data"][0].get("secret").is_none(), "{channels}");
    assert_eq!(
        channels["data"][0]["callbacks"], false,
        "off unless asked for"
    );
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("/api/user/{zed}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = gw
        .post_as(&zed_key, "/mj/submit/imagine", json!({"prompt": "zed"}))
        .await;
    assert_eq!(status, 401, "a disabled user's keys stop working");
    assert_ledger_clean(&gw).await;
    gw.shutdown().await;
}

both_backends!(
    concurrent_imagines_never_overdraw,
    failures_are_refunded_once,
    key_limits_stop_a_key,
    task_history_api,
    admin_api,
);
