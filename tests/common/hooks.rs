//! A callback receiver on 127.0.0.1:0 that records every request POSTed to it (headers, raw
//! body, and what it answered) and answers as scripted: by default 200, or e.g. 500 three
//! times then 200, or never.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Call {
    pub headers: HeaderMap,
    pub raw: String,
    pub body: Value,
    /// What it was answered; `None` when the receiver hung.
    pub answered: Option<u16>,
}

impl Call {
    pub fn accepted(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Script {
    next: VecDeque<Answer>,
    then: Answer,
}

#[derive(Clone)]
struct Shared {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<Script>>,
}

pub struct HookReceiver {
    pub url: String,
    shared: Shared,
}

impl HookReceiver {
    pub async fn start() -> HookReceiver {
        let shared = Shared {
            calls: Default::default(),
            script: Arc::new(Mutex::new(Script {
                next: VecDeque::new(),
                then: Answer::Status(200),
            })),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HookReceiver { url, shared }
    }

    /// Answers the next requests with `next`, one each, and every later one with `then`.
    pub fn script(&self, next: Vec<Answer>, then: Answer) {
        *self.shared.script.lock().unwrap() = Script {
            next: next.into(),
            then,
        };
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Bodies received so far, in arrival order.
    pub fn bodies(&self) -> Vec<Value> {
        self.calls().into_iter().map(|c| c.body).collect()
    }

    /// Waits (bounded) until `done` holds for the calls so far; returns them.
    pub async fn wait_calls(&self, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hook never received the wanted calls; got {:?}",
                calls
                    .iter()
                    .map(|c| (
                        c.answered,
                        c.body["status"].clone(),
                        c.body["progress"].clone()
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (bounded) until some received body satisfies `done`; returns all bodies.
    pub async fn wait_for(&self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let calls = self
            .wait_calls(|calls| calls.iter().any(|c| done(&c.body)))
            .await;
        calls.into_iter().map(|c| c.body).collect()
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, raw: String) -> StatusCode {
    let answer = {
        let mut script = shared.script.lock().unwrap();
        let then = script.then;
        script.next.pop_front().unwrap_or(then)
    };
    let body = serde_json::from_str(&raw).unwrap_or(Value::String(raw.clone()));
    let answered = match answer {
        Answer::Status(code) => Some(code),
        Answer::Hang => None,
    };
    shared.calls.lock().unwrap().push(Call {
        headers,
        raw,
        body,
        answered,
    });
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => std::future::pending().await,
    }
}
