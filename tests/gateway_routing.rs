//! Channels: routing by mode, priority and weight, caps, failover, health and recovery,
//! and actions on the channel that made the task; over HTTP, with several simulators.

mod common;

use common::{Db, Gateway, fast_config};
use futures_util::future::join_all;
use mjgate::config::Config;
use mjgate::domain::Mode;
use mjgate::sim::{Faults, Pace, SimConfig};
use mjgate::store::ChannelChange;
use serde_json::{Value, json};
use std::time::Duration;

const PLENTY: i64 = 10_000 * 50_000;

fn sim(step_ms: u64) -> SimConfig {
    SimConfig {
        pace: Pace::Step(Duration::from_millis(step_ms)),
        concurrency: 50,
        queue_size: 100,
        ..SimConfig::default()
    }
}

async fn funded(gw: Gateway) -> Gateway {
    gw.store().top_up(gw.user_id, PLENTY).await.unwrap();
    gw
}

/// Submissions each simulator received on `path`.
fn received(gw: &Gateway, n: usize, path: &str) -> Vec<Value> {
    gw.sims[n]
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(path))
        .map(|r| r.body.unwrap_or_default())
        .collect()
}

async fn channel_of(gw: &Gateway, mj_id: &str) -> i64 {
    gw.store()
        .task(mj_id)
        .await
        .unwrap()
        .unwrap()
        .channel_id
        .unwrap()
}

async fn failover_health_and_recovery(db: Db) {
    let config = Config {
        channel_failures_to_trip: 2,
        // Longer than the first phase takes, so that phase sees no trial.
        channel_cooldown: Duration::from_secs(3),
        ..fast_config()
    };
    let failing = SimConfig {
        faults: Faults {
            http500_all: true,
            ..Faults::default()
        },
        ..sim(10)
    };
    let full = SimConfig {
        concurrency: 0,
        queue_size: 0,
        ..sim(10)
    };
    let slow = sim(150);
    let gw = funded(Gateway::start(db, vec![failing, full, sim(10), slow], config).await).await;
    let balance = gw
        .store()
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap()
        .balance;

    let mut ids = Vec::new();
    for n in 0..24 {
        let id = gw
            .submit(
                "/mj/submit/imagine",
                json!({"prompt": format!("fox {n}")}),
                1,
            )
            .await;
        ids.push(id);
    }
    let (healthy, slow) = (gw.channel_id(2).await, gw.channel_id(3).await);
    for id in &ids {
        let channel = channel_of(&gw, id).await;
        assert!(
            channel == healthy || channel == slow,
            "{id} landed on {channel}"
        );
    }
    // The failing and the full channel were tried until they tripped, then left alone.
    assert!(received(&gw, 0, "/submit/imagine").len() <= 3);
    assert!(received(&gw, 1, "/submit/imagine").len() <= 3);
    // Each task reached exactly one upstream that took it.
    let taken =
        received(&gw, 2, "/submit/imagine").len() + received(&gw, 3, "/submit/imagine").len();
    assert_eq!(taken, ids.len());
    for id in &ids {
        assert_eq!(gw.wait_final(id).await["status"], "SUCCESS");
    }
    let after = gw
        .store()
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap()
        .balance;
    assert_eq!(balance - after, 24 * 50_000, "each task charged once");
    assert!(gw.store().ledger_check().await.unwrap().is_empty());

    // An admin sees why the failing channel is out.
    let (token, admin_id) = gw.admin().await;
    let listed: Value = gw
        .http
        .get(format!("{}/api/channel/", gw.base))
        .bearer_auth(&token)
        .header("New-Api-User", admin_id.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = &listed["data"][0];
    assert_eq!(first["name"], "sim-0", "{listed}");
    assert!(
        first["health"]["recent_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{first}"
    );
    assert!(
        first["health"]["success_rate"].as_f64().unwrap() < 0.01,
        "{first}"
    );
    assert!(
        listed["data"][2]["health"]["success_rate"]
            .as_f64()
            .unwrap()
            > 0.99
    );

    // The failing channel recovers: after its cool-down it gets traffic again by itself.
    gw.sims[0].set_faults(Faults::default());
    let recovered = gw.channel_id(0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let id = gw
            .submit("/mj/submit/imagine", json!({"prompt": "again"}), 1)
            .await;
        if channel_of(&gw, &id).await == recovered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the recovered channel never got a task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;
}

async fn modes_choose_channels_and_prices(db: Db) {
    let fast_only = SimConfig {
        modes: vec![Mode::Fast],
        ..sim(10)
    };
    let gw = funded(Gateway::start(db, vec![fast_only, sim(10)], fast_config()).await).await;
    gw.configure_channel(
        0,
        ChannelChange {
            modes: Some("FAST".into()),
            ..Default::default()
        },
    )
    .await;
    gw.configure_channel(
        1,
        ChannelChange {
            modes: Some("FAST,RELAX".into()),
            ..Default::default()
        },
    )
    .await;
    gw.store()
        .set_price(&mjgate::admin::price_rule("IMAGINE", Some("RELAX"), 20_000).unwrap())
        .await
        .unwrap();
    let before = gw
        .store()
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap()
        .balance;
    let relax = gw.channel_id(1).await;
    for n in 0..6 {
        let id = gw
            .submit(
                "/mj-relax/mj/submit/imagine",
                json!({"prompt": format!("owl {n}")}),
                1,
            )
            .await;
        assert_eq!(channel_of(&gw, &id).await, relax);
        let task = gw.store().task(&id).await.unwrap().unwrap();
        assert_eq!(task.mode(), Some(Mode::Relax));
    }
    // accountFilter.modes selects the same way.
    let id = gw
        .submit(
            "/mj/submit/imagine",
            json!({"prompt": "owl", "accountFilter": {"modes": ["RELAX"]}}),
            1,
        )
        .await;
    assert_eq!(channel_of(&gw, &id).await, relax);
    let after = gw
        .store()
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap()
        .balance;
    assert_eq!(before - after, 7 * 20_000, "RELAX has its own price");
    assert!(received(&gw, 0, "/submit/imagine").is_empty());
    for body in received(&gw, 1, "/submit/imagine") {
        assert_eq!(body["accountFilter"]["modes"], json!(["RELAX"]), "{body}");
    }
    let (status, answer) = gw
        .post("/mj-turbo/mj/submit/imagine", json!({"prompt": "owl"}))
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (503, Some(24)),
        "{answer}"
    );
    gw.shutdown().await;
}

async fn weights_spread_submissions(db: Db) {
    // One slot and a long pace: the first task runs, the rest wait in the simulators' queues
    // (code 22), so a thousand submissions cost no drawing.
    let queueing = || SimConfig {
        pace: Pace::Step(Duration::from_secs(3600)),
        concurrency: 1,
        queue_size: 2000,
        ..SimConfig::default()
    };
    let config = Config {
        poll_interval: Duration::from_secs(60),
        ..fast_config()
    };
    let gw =
        funded(Gateway::start(db, vec![queueing(), queueing(), queueing()], config).await).await;
    gw.configure_channel(
        0,
        ChannelChange {
            weight: Some(1),
            ..Default::default()
        },
    )
    .await;
    gw.configure_channel(
        1,
        ChannelChange {
            weight: Some(3),
            ..Default::default()
        },
    )
    .await;
    gw.configure_channel(
        2,
        ChannelChange {
            priority: Some(-1),
            weight: Some(50),
            ..Default::default()
        },
    )
    .await;
    for wave in 0..50 {
        let answers = join_all((0..20).map(|n| {
            gw.post(
                "/mj/submit/imagine",
                json!({"prompt": format!("w{wave}-{n}")}),
            )
        }))
        .await;
        for (status, answer) in answers {
            assert_eq!(status, 200, "{answer}");
            assert!(matches!(answer["code"].as_i64(), Some(1 | 22)), "{answer}");
        }
    }
    let counts: Vec<usize> = (0..3)
        .map(|n| received(&gw, n, "/submit/imagine").len())
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 1000);
    assert_eq!(counts[2], 0, "a lower priority is only a fallback");
    let share = counts[0] as f64 / 1000.0;
    assert!((share - 0.25).abs() <= 0.02, "weights 1:3 gave {counts:?}");
    gw.shutdown().await;
}

async fn caps_and_actions_stay_on_their_channel(db: Db) {
    let gw = funded(Gateway::start(db, vec![sim(10), sim(10)], fast_config()).await).await;
    // Equal weights alternate; each grid is then upscaled on its own channel.
    let grids: Vec<String> = join_all((0..2).map(|n| {
        gw.submit(
            "/mj/submit/imagine",
            json!({"prompt": format!("bridge {n}")}),
            1,
        )
    }))
    .await;
    let mut channels = Vec::new();
    let mut upscales = Vec::new();
    for id in &grids {
        let grid = gw.wait_final(id).await;
        let u1 = grid["buttons"][0]["customId"].clone();
        let up = gw
            .submit(
                "/mj/submit/action",
                json!({"taskId": id, "customId": u1, "chooseSameChannel": true}),
                1,
            )
            .await;
        upscales.push(up);
        channels.push(channel_of(&gw, id).await);
    }
    assert_ne!(channels[0], channels[1], "equal weights alternate");
    for n in 0..2 {
        let actions: Vec<_> = gw.sims[n]
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/submit/action"))
            .collect();
        assert_eq!(actions.len(), 1);
        assert_eq!(
            actions[0].api_secret.as_deref(),
            Some(format!("secret-{n}").as_str())
        );
        let body = actions[0].body.clone().unwrap();
        assert_eq!(body["chooseSameChannel"], true);
        let owner = gw.channel_id(n).await;
        let mine = grids
            .iter()
            .zip(&channels)
            .find(|(_, c)| **c == owner)
            .unwrap()
            .0;
        let upstream_id = gw
            .store()
            .task(mine)
            .await
            .unwrap()
            .unwrap()
            .upstream_id
            .unwrap();
        assert_eq!(body["taskId"], upstream_id.as_str());
    }

    for up in &upscales {
        gw.wait_final(up).await;
    }
    // A cap of one: while sim-0's channel holds a task, new tasks go elsewhere.
    gw.configure_channel(
        0,
        ChannelChange {
            max_in_flight: Some(1),
            priority: Some(10),
            ..Default::default()
        },
    )
    .await;
    gw.sims[0].set_faults(Faults {
        stall_word: "bridge".to_string(),
        ..Faults::default()
    });
    let first = gw
        .submit("/mj/submit/imagine", json!({"prompt": "bridge stalls"}), 1)
        .await;
    assert_eq!(channel_of(&gw, &first).await, gw.channel_id(0).await);
    let second = gw
        .submit("/mj/submit/imagine", json!({"prompt": "next"}), 1)
        .await;
    assert_eq!(channel_of(&gw, &second).await, gw.channel_id(1).await);
    gw.shutdown().await;
}

/// Two gateways on one database race twenty submissions for a channel capped at three:
/// exactly three get in.
async fn caps_hold_across_processes(db: Db) {
    // A slow upstream, so that the submissions are all in flight at once.
    let waiting = SimConfig {
        pace: Pace::Step(Duration::from_secs(3600)),
        concurrency: 50,
        faults: Faults {
            submit_delay_ms: 300,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let gw = funded(Gateway::start(db, vec![waiting], fast_config()).await).await;
    gw.configure_channel(
        0,
        ChannelChange {
            max_in_flight: Some(3),
            ..Default::default()
        },
    )
    .await;
    let store = mjgate::store::open(gw.database_url()).await.unwrap();
    let second = mjgate::AppState::with_store(fast_config(), store)
        .await
        .unwrap();
    let app = mjgate::App::from_state(second).await.unwrap();
    let second_base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let submit = |base: String| {
        let http = gw.http.clone();
        let key = gw.key.clone();
        async move {
            let response = http
                .post(format!("{base}/mj/submit/imagine"))
                .bearer_auth(key)
                .json(&json!({"prompt": "capped"}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let answers = join_all((0..20).map(|n| {
        let base = if n % 2 == 0 {
            gw.base.clone()
        } else {
            second_base.clone()
        };
        submit(base)
    }))
    .await;
    let accepted = answers
        .iter()
        .filter(|(s, a)| *s == 200 && a["code"] == 1)
        .count();
    let full = answers
        .iter()
        .filter(|(s, a)| *s == 503 && a["code"] == 24)
        .count();
    assert_eq!((accepted, full), (3, 17), "{answers:?}");
    assert!(gw.store().ledger_check().await.unwrap().is_empty());
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    gw.shutdown().await;
}

both_backends!(
    caps_hold_across_processes,
    failover_health_and_recovery,
    modes_choose_channels_and_prices,
    weights_spread_submissions,
    caps_and_actions_stay_on_their_channel,
);
