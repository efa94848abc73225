//! A callback receiver on 127.0.0.1:0 that records every JSON body POSTed to it.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Calls = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

pub struct HookReceiver {
    pub url: String,
    calls: Calls,
}

impl HookReceiver {
    pub async fn start() -> HookReceiver {
        let calls = Calls::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HookReceiver { url, calls }
    }

    /// Bodies received so far, in arrival order.
    pub fn bodies(&self) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits (bounded) until some received body satisfies `done`; returns all bodies.
    pub async fn wait_for(&self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let bodies = self.bodies();
            if bodies.iter().any(&done) {
                return bodies;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hook never received the wanted call; got {bodies:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(State(calls): State<Calls>, headers: HeaderMap, body: String) {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    calls.lock().unwrap().push((headers, value));
}
