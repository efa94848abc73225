//! Callbacks both ways, end to end: upstreams reporting to the gateway at once, and the
//! gateway's signed, ordered, retried notifications to client hooks, on both databases.

mod common;

use common::hooks::{Answer, Call, HookReceiver};
use common::{Db, Gateway, fast_config};
use hmac::{Hmac, Mac};
use mjgate::Config;
use mjgate::domain::ids::now_ms;
use mjgate::sim::{Pace, SimConfig};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::{Duration, Instant};

const PLENTY: i64 = 100 * 50_000;

async fn funded(gw: Gateway) -> Gateway {
    gw.store().top_up(gw.user_id, PLENTY).await.unwrap();
    gw
}

fn sim(step_ms: u64) -> SimConfig {
    SimConfig {
        pace: Pace::Step(Duration::from_millis(step_ms)),
        concurrency: 10,
        ..SimConfig::default()
    }
}

/// Polling that would take longer than any test: only callbacks can move a task.
fn callbacks_only() -> Config {
    Config {
        poll_interval: Duration::from_secs(60),
        ..fast_config()
    }
}

/// `(status, progress)` of a task object.
fn step(task: &Value) -> (String, String) {
    (
        task["status"].as_str().unwrap_or_default().to_string(),
        task["progress"].as_str().unwrap_or_default().to_string(),
    )
}

/// The signature header checked the way a receiver would, independently of the gateway.
fn signature_verifies(secret: &str, call: &Call) -> bool {
    let Some(header) = call.header("x-mjgate-signature") else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now_ms() / 1000 - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", call.raw).as_bytes());
    hex::encode(mac.finalize().into_bytes()) == v1
}

/// The admin view of a task's deliveries.
async fn deliveries(gw: &Gateway, admin: &(String, i64), id: &str) -> Vec<Value> {
    let (status, answer) = gw
        .manage_get(admin, &format!("/api/task/{id}/deliveries"))
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["data"].as_array().unwrap().clone()
}

/// Waits (bounded) until every delivery of the task is out of `pending`.
async fn wait_deliveries_done(gw: &Gateway, admin: &(String, i64), id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let list = deliveries(gw, admin, id).await;
        if !list.is_empty() && list.iter().all(|d| d["state"] != "pending") {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn upstream_callbacks_follow_the_simulator(db: Db) {
    let gw =
        Gateway::start_with(db, vec![sim(150)], callbacks_only(), |c| c.callbacks = true).await;
    let gw = funded(gw).await;
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a heron at dawn", "notifyHook": "https://client.example/hook"}),
            1,
        )
        .await;

    // The upstream got the gateway's callback URL, not the client's hook.
    let task = gw.store().task(&id).await.unwrap().unwrap();
    let submit = gw.sims[0]
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/submit/imagine"))
        .unwrap();
    let hook = submit.body.unwrap()["notifyHook"]
        .as_str()
        .unwrap()
        .to_string();
    let channel = task.channel_id.unwrap();
    assert!(
        hook.starts_with(&format!("{}/mj/callback/{channel}?secret=", gw.base)),
        "{hook}"
    );
    assert!(!hook.contains("client.example"));

    // Watch the simulator and the gateway side by side: when does each state show on each?
    let upstream_id = task.upstream_id.unwrap();
    let sim_fetch = format!("{}/mj/task/{upstream_id}/fetch", gw.sims[0].base_url());
    let started = Instant::now();
    let mut upstream_seen: Vec<((String, String), Duration)> = Vec::new();
    let mut gateway_seen: Vec<((String, String), Duration)> = Vec::new();
    loop {
        let upstream: Value = gw
            .http
            .get(&sim_fetch)
            .header("mj-api-secret", "secret-0")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ours = gw.fetch(&id).await;
        let at = started.elapsed();
        for (seen, task) in [(&mut upstream_seen, &upstream), (&mut gateway_seen, &ours)] {
            if seen.last().map(|(s, _)| s) != Some(&step(task)) {
                seen.push((step(task), at));
            }
        }
        if ours["status"] == "SUCCESS" {
            break;
        }
        assert!(
            at < Duration::from_secs(30),
            "the gateway did not follow the upstream: {gateway_seen:?} vs {upstream_seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Polling is a minute away: every state the gateway showed came by callback.
    let in_progress = gateway_seen
        .iter()
        .filter(|((status, _), _)| status == "IN_PROGRESS")
        .count();
    assert!(in_progress >= 3, "{gateway_seen:?}");
    let mut lags = Vec::new();
    for (state, at) in &gateway_seen {
        if let Some((_, upstream_at)) = upstream_seen.iter().find(|(s, _)| s == state) {
            lags.push(at.saturating_sub(*upstream_at));
        }
    }
    let worst = lags.iter().max().copied().unwrap_or_default();
    eprintln!(
        "callback lag behind the upstream over {} states: worst {worst:?}, all {lags:?} (poll interval 60s)",
        lags.len()
    );
    assert!(worst < Duration::from_secs(6), "{lags:?}");
    gw.shutdown().await;
}

async fn forged_upstream_callbacks_change_nothing(db: Db) {
    let gw = Gateway::start_with(db, vec![sim(20)], callbacks_only(), |c| c.callbacks = true).await;
    let gw = funded(gw).await;
    // The stall word keeps the task at IN_PROGRESS 15% for good.
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a heron sim-stall"}),
            1,
        )
        .await;
    gw.wait_for(&id, |t| t["status"] == "IN_PROGRESS").await;
    let before = gw.fetch(&id).await;
    assert_eq!(step(&before).1, "15%", "{before}");
    let balance = gw.store().user(gw.user_id).await.unwrap().unwrap().balance;
    let task = gw.store().task(&id).await.unwrap().unwrap();
    let (channel, upstream_id) = (task.channel_id.unwrap(), task.upstream_id.unwrap());
    let real = gw.sims[0]
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/submit/imagine"))
        .unwrap()
        .body
        .unwrap()["notifyHook"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = real.split("secret=").nth(1).unwrap().to_string();

    let success = json!({"id": upstream_id, "status": "SUCCESS", "progress": "100%",
        "imageUrl": "http://attacker.example/x.png", "buttons": []});
    let failure = json!({"id": upstream_id, "status": "FAILURE", "progress": "15%",
        "failReason": "forged"});
    let forged = [
        format!(
            "{}/mj/callback/{channel}?secret=0123456789abcdef0123456789abcdef",
            gw.base
        ),
        format!("{}/mj/callback/{channel}?secret=", gw.base),
        format!("{}/mj/callback/{channel}", gw.base),
        // A real secret is only good for its own channel.
        format!("{}/mj/callback/{}?secret={secret}", gw.base, channel + 1),
        format!("{}/mj/callback/x{channel}?secret={secret}", gw.base),
    ];
    for url in &forged {
        for report in [&success, &failure] {
            let response = gw.http.post(url).json(report).send().await.unwrap();
            assert_eq!(response.status(), 401, "{url}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["code"], 21, "{answer}");
        }
    }
    assert_eq!(
        gw.fetch(&id).await,
        before,
        "a forged callback changed the task"
    );
    let after = gw.store().user(gw.user_id).await.unwrap().unwrap().balance;
    assert_eq!(after, balance, "a forged FAILURE refunded the task");

    // Replays with the real secret: the upstream's last report again (what it sent at 15%),
    // and older states, change nothing.
    let last: Value = gw
        .http
        .get(format!(
            "{}/mj/task/{upstream_id}/fetch",
            gw.sims[0].base_url()
        ))
        .header("mj-api-secret", "secret-0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(step(&last), step(&before));
    let mut older = last.clone();
    older["status"] = json!("SUBMITTED");
    older["progress"] = json!("0%");
    let mut oldest = last.clone();
    oldest["status"] = json!("NOT_START");
    for stale in [last, older, oldest] {
        let response = gw.http.post(&real).json(&stale).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["description"], "Unchanged", "{stale}");
    }
    assert_eq!(
        gw.fetch(&id).await,
        before,
        "a replayed callback changed the task"
    );
    let unknown = json!({"id": "1700000000000999", "status": "SUCCESS"});
    let response = gw.http.post(&real).json(&unknown).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let garbage = gw.http.post(&real).body("not json").send().await.unwrap();
    assert_eq!(garbage.status(), 400);

    // The real URL is the same path as a poll: a report that moves on is applied, and a
    // FAILURE refunds once.
    let ahead = json!({"id": upstream_id, "status": "IN_PROGRESS", "progress": "31%"});
    let response = gw.http.post(&real).json(&ahead).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(step(&gw.fetch(&id).await).1, "31%");
    for _ in 0..2 {
        let failed = json!({"id": upstream_id, "status": "FAILURE", "progress": "31%",
            "failReason": "Job failed upstream"});
        let response = gw.http.post(&real).json(&failed).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let done = gw.fetch(&id).await;
    assert_eq!(done["status"], "FAILURE");
    assert_eq!(done["failReason"], "Job failed upstream");
    let refunded = gw.store().user(gw.user_id).await.unwrap().unwrap().balance;
    assert_eq!(refunded, balance + task.quota, "refunded exactly once");
    assert!(gw.store().ledger_check().await.unwrap().is_empty());
    gw.shutdown().await;
}

async fn notifications_are_retried_signed_and_in_order(db: Db) {
    let hook = HookReceiver::start().await;
    hook.script(vec![Answer::Status(500); 3], Answer::Status(200));
    let gw = funded(Gateway::start(db, vec![sim(60)], fast_config()).await).await;
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a paper kite", "notifyHook": hook.url, "state": "s-9"}),
            1,
        )
        .await;
    assert_eq!(gw.wait_final(&id).await["status"], "SUCCESS");
    let calls = hook
        .wait_calls(|calls| {
            calls
                .iter()
                .any(|c| c.accepted() && c.body["status"] == "SUCCESS")
        })
        .await;
    let admin = gw.admin().await;
    let list = wait_deliveries_done(&gw, &admin, &id).await;

    // Every state the gateway recorded was delivered, once each, in order.
    assert!(list.iter().all(|d| d["state"] == "delivered"), "{list:#?}");
    let seqs: Vec<i64> = list.iter().map(|d| d["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=list.len() as i64).collect::<Vec<_>>());
    let recorded: Vec<(String, String)> = list.iter().map(|d| step(&d["payload"])).collect();
    let accepted: Vec<&Call> = calls.iter().filter(|c| c.accepted()).collect();
    let received: Vec<(String, String)> = accepted.iter().map(|c| step(&c.body)).collect();
    assert_eq!(received, recorded);
    let ids: Vec<String> = accepted
        .iter()
        .map(|c| c.header("x-mjgate-delivery").unwrap().to_string())
        .collect();
    let listed: Vec<String> = list.iter().map(|d| d["id"].to_string()).collect();
    assert_eq!(ids, listed);
    assert_eq!(recorded.first().unwrap().0, "SUBMITTED");
    assert_eq!(recorded.last().unwrap(), &("SUCCESS".into(), "100%".into()));
    assert!(
        recorded.iter().any(|(s, _)| s == "IN_PROGRESS"),
        "{recorded:?}"
    );

    // The first state was refused three times, and retried until taken.
    let first = &list[0];
    let codes: Vec<i64> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 500, 200], "{first:#}");
    assert_eq!(first["last_error"], Value::Null);
    for refused in &calls[..3] {
        assert_eq!(refused.answered, Some(500));
        assert_eq!(refused.raw, accepted[0].raw);
    }

    // Signed with the key's hook secret, and shown as the client sees tasks.
    for call in &calls {
        assert!(
            signature_verifies(&gw.hook_secret, call),
            "{:?}",
            call.headers
        );
        assert!(!signature_verifies("another secret", call));
        assert_eq!(call.header("content-type"), Some("application/json"));
        let task = &call.body;
        assert_eq!(task["id"], id);
        assert_eq!(task["state"], "s-9");
        assert!(
            task["properties"].get("discordInstanceId").is_none(),
            "{task}"
        );
        if let Some(url) = task["imageUrl"].as_str() {
            assert!(
                url.starts_with(&format!("{}/mj/image/{id}?sig=", gw.base)),
                "{url}"
            );
        }
    }
    let done = &accepted.last().unwrap().body;
    assert_eq!(done["buttons"].as_array().unwrap().len(), 9);
    assert_eq!(
        done,
        &gw.fetch(&id).await,
        "the last notification is the task"
    );

    // Only admins see deliveries.
    let alice = (gw.access_token.clone(), gw.user_id);
    let (status, _) = gw
        .manage_get(&alice, &format!("/api/task/{id}/deliveries"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = gw
        .manage_get(&admin, "/api/task/1700000000000999/deliveries")
        .await;
    assert_eq!(status, 404);
    gw.shutdown().await;
}

async fn a_receiver_that_never_answers_is_given_up(db: Db) {
    let hook = HookReceiver::start().await;
    hook.script(vec![], Answer::Hang);
    let config = Config {
        callback_max_age: Duration::from_secs(1),
        callback_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let gw = funded(Gateway::start(db, vec![sim(30)], config).await).await;
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a lantern", "notifyHook": hook.url}),
            1,
        )
        .await;
    gw.wait_final(&id).await;
    let admin = gw.admin().await;
    let list = wait_deliveries_done(&gw, &admin, &id).await;

    assert!(list.iter().all(|d| d["state"] == "given_up"), "{list:#?}");
    let first_attempts = list[0]["attempts"].as_array().unwrap();
    assert!(
        first_attempts.len() >= 2,
        "retried before giving up: {list:#?}"
    );
    let mut total = 0;
    for delivery in &list {
        assert!(delivery["finished_at"].is_i64());
        assert_eq!(delivery["last_error"], "timed out", "{delivery:#}");
        let attempts = delivery["attempts"].as_array().unwrap();
        assert!(!attempts.is_empty());
        for attempt in attempts {
            assert_eq!(attempt["status_code"], Value::Null);
            assert_eq!(attempt["error"], "timed out");
            assert!(attempt["duration_ms"].as_i64().unwrap() >= 250, "{attempt}");
        }
        total += attempts.len();
    }
    // Every recorded attempt reached the receiver, in order of the states.
    let calls = hook.calls();
    assert_eq!(calls.len(), total);
    let mut order: Vec<i64> = calls
        .iter()
        .map(|c| c.header("x-mjgate-delivery").unwrap().parse().unwrap())
        .collect();
    let arrived = order.clone();
    order.sort();
    assert_eq!(
        arrived, order,
        "a later state went out before an earlier one"
    );
    gw.shutdown().await;
}

async fn a_restart_loses_no_notification(db: Db) {
    let hook = HookReceiver::start().await;
    // Two states get through, then the receiver fails until it is mended.
    hook.script(
        vec![Answer::Status(200), Answer::Status(200)],
        Answer::Status(500),
    );
    let gw = funded(Gateway::start(db, vec![sim(80)], fast_config()).await).await;
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "a stone bridge", "notifyHook": hook.url}),
            1,
        )
        .await;
    gw.wait_final(&id).await;
    hook.wait_calls(|calls| calls.iter().filter(|c| c.answered == Some(500)).count() >= 2)
        .await;
    let admin = gw.admin().await;
    let before = deliveries(&gw, &admin, &id).await;
    let pending = before.iter().filter(|d| d["state"] == "pending").count();
    assert!(pending >= 2, "{before:#?}");

    let gw = gw.restart(fast_config()).await;
    hook.script(vec![], Answer::Status(200));
    let list = wait_deliveries_done(&gw, &admin, &id).await;

    assert_eq!(
        list.len(),
        before.len(),
        "no state was queued or lost meanwhile"
    );
    assert!(list.iter().all(|d| d["state"] == "delivered"), "{list:#?}");
    let recorded: Vec<(String, String)> = list.iter().map(|d| step(&d["payload"])).collect();
    let received: Vec<(String, String)> = hook
        .calls()
        .iter()
        .filter(|c| c.accepted())
        .map(|c| step(&c.body))
        .collect();
    assert_eq!(received, recorded, "every state, once, in order");
    // The attempts made before the restart are still on record.
    let third = &list[2]["attempts"].as_array().unwrap();
    assert!(third.len() >= 3, "{:#}", list[2]);
    assert!(
        third[..third.len() - 1]
            .iter()
            .all(|a| a["status_code"] == 500)
    );
    assert_eq!(third.last().unwrap()["status_code"], 200);
    gw.shutdown().await;
}

async fn hooks_into_private_networks_are_refused(db: Db) {
    let strict = Config {
        allow_private_hooks: false,
        ..fast_config()
    };
    let gw = funded(Gateway::start(db, vec![sim(20)], strict).await).await;
    let balance = gw.store().user(gw.user_id).await.unwrap().unwrap().balance;
    for hook in [
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.20:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let (status, answer) = gw
            .post(
                "/mj/submit/imagine",
                json!({"prompt": "a fox", "notifyHook": hook}),
            )
            .await;
        assert_eq!(
            (status, answer["code"].as_i64()),
            (400, Some(21)),
            "{hook}: {answer}"
        );
        let description = answer["description"].as_str().unwrap();
        assert!(description.contains("notifyHook"), "{description}");
    }
    let after = gw.store().user(gw.user_id).await.unwrap().unwrap().balance;
    assert_eq!(after, balance, "refused submissions cost nothing");
    let tasks = gw.store().recent_user_tasks(gw.user_id, 10).await.unwrap();
    assert!(tasks.is_empty(), "refused submissions make no task");
    gw.shutdown().await;

    // Allowed by configuration, the same hook is taken.
    let hook = HookReceiver::start().await;
    let gw = funded(Gateway::start(db, vec![sim(20)], fast_config()).await).await;
    gw.submit(
        "/mj/submit/imagine",
        json!({"prompt": "a fox", "notifyHook": hook.url}),
        1,
    )
    .await;
    hook.wait_for(|t| t["status"] == "SUCCESS").await;
    gw.shutdown().await;
}

async fn the_sender_refuses_private_addresses_too(db: Db) {
    // The configured default hook is not checked at submission; the sender still refuses
    // to call into a private network.
    let hook = HookReceiver::start().await;
    let config = Config {
        allow_private_hooks: false,
        notify_hook: Some(hook.url.replace("127.0.0.1", "localhost")),
        callback_max_age: Duration::from_secs(1),
        ..fast_config()
    };
    let gw = funded(Gateway::start(db, vec![sim(20)], config).await).await;
    let id = gw
        .submit("/mj/submit/imagine", json!({"prompt": "an owl"}), 1)
        .await;
    gw.wait_final(&id).await;
    let admin = gw.admin().await;
    let list = wait_deliveries_done(&gw, &admin, &id).await;
    assert!(list.iter().all(|d| d["state"] == "given_up"), "{list:#?}");
    for delivery in &list {
        assert!(delivery["url"].as_str().unwrap().contains("localhost"));
        let error = delivery["last_error"].as_str().unwrap();
        assert!(error.contains("private or loopback"), "{error}");
    }
    assert!(
        hook.calls().is_empty(),
        "the sender called a loopback address"
    );
    gw.shutdown().await;
}

both_backends!(
    upstream_callbacks_follow_the_simulator,
    forged_upstream_callbacks_change_nothing,
    notifications_are_retried_signed_and_in_order,
    a_receiver_that_never_answers_is_given_up,
    a_restart_loses_no_notification,
    hooks_into_private_networks_are_refused,
    the_sender_refuses_private_addresses_too,
);
