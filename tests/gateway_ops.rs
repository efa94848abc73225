//! What operators rely on: probes for a load balancer, and per-key rate limits counted in
//! the shared database.

mod common;

use common::{Db, Gateway, fast_config};
use mjgate::config::Config;

async fn probes_answer(db: Db) {
    let gw = Gateway::start(db, vec![], fast_config()).await;
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = gw
            .http
            .get(format!("{}{path}", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), body);
    }
    assert!(gw.store().check_ready().await.unwrap());
    gw.shutdown().await;
}

async fn keys_are_rate_limited(db: Db) {
    let config = Config {
        rate_limit_per_minute: 5,
        ..fast_config()
    };
    let gw = Gateway::start(db, vec![], config).await;
    let mut statuses = Vec::new();
    // Twelve: even split by a window boundary, one side holds more than five.
    for _ in 0..12 {
        statuses.push(gw.get("/mj/task/list").await);
    }
    let codes: Vec<u16> = statuses.iter().map(|(s, _)| *s).collect();
    let limited = codes.iter().filter(|s| **s == 429).count();
    assert!(limited >= 1, "{codes:?}");
    let (_, refused) = statuses.iter().find(|(s, _)| *s == 429).unwrap();
    assert_eq!(refused["code"], 23, "{refused}");
    // Another key of another user has its own budget.
    let bob = gw.key_for("bob").await;
    let (status, _) = gw.get_as(&bob, "/mj/task/list").await;
    assert_eq!(status, 200);
    gw.shutdown().await;
}

both_backends!(probes_answer, keys_are_rate_limited);
