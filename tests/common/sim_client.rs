//! A client that speaks to a simulator directly, the way a midjourney-proxy client would.

use mjgate::sim::{SimConfig, Simulator};
use serde_json::Value;

pub const SECRET: &str = "sim-secret";

pub struct SimClient {
    pub sim: Simulator,
    pub base: String,
    pub http: reqwest::Client,
}

impl SimClient {
    /// A simulator with `SECRET` as its secret.
    pub async fn start(config: SimConfig) -> SimClient {
        let sim = Simulator::start(SimConfig {
            secret: Some(SECRET.to_string()),
            ..config
        })
        .await
        .unwrap();
        SimClient {
            base: sim.base_url(),
            sim,
            http: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("mj-api-secret", SECRET)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Submits and returns the answer, asserting HTTP 200 and the code.
    pub async fn submit(&self, path: &str, body: Value, code: i64) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert_eq!(
            (status, answer["code"].as_i64()),
            (200, Some(code)),
            "{answer}"
        );
        answer
    }

    pub async fn submit_id(&self, path: &str, body: Value) -> String {
        let answer = self.submit(path, body, 1).await;
        answer["result"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("mj-api-secret", SECRET)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn fetch(&self, id: &str) -> Value {
        let (status, task) = self.get(&format!("/mj/task/{id}/fetch")).await;
        assert_eq!(status, 200);
        task
    }

    /// Polls until `done` holds (bounded); returns every distinct state seen.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        super::poll_states(id, || self.fetch(id), done).await
    }

    pub async fn wait_final(&self, id: &str) -> Value {
        let states = self
            .wait_for(id, |t| {
                matches!(t["status"].as_str(), Some("SUCCESS" | "FAILURE"))
            })
            .await;
        states.last().unwrap().clone()
    }

    /// The bytes behind a URL the simulator handed out.
    pub async fn download(&self, url: &str) -> bytes::Bytes {
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        response.bytes().await.unwrap()
    }

    pub async fn image(&self, url: &str) -> image::RgbImage {
        image::load_from_memory(&self.download(url).await)
            .unwrap()
            .to_rgb8()
    }
}
