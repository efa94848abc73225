//! The HTTP client for client hooks: built once, with a time limit per attempt, no
//! redirects (a redirect could lead anywhere), and, unless private hooks are allowed, a
//! resolver that refuses private addresses.

use super::signature;
use crate::domain::ids::now_ms;
use crate::net_guard::{PublicOnly, is_public, literal_ip};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header that names the delivery, so that a receiver can drop a repeat.
pub const DELIVERY_HEADER: &str = "X-Mjgate-Delivery";

/// How one POST went.
#[derive(Debug, Clone, PartialEq)]
pub struct PostOutcome {
    /// When it started, Unix milliseconds.
    pub at: i64,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl PostOutcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends notifications.
#[derive(Clone)]
pub struct HookClient {
    http: reqwest::Client,
    allow_private: bool,
}

impl HookClient {
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mjgate/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            // A proxy would resolve names itself, past the guard.
            builder = builder.dns_resolver(Arc::new(PublicOnly)).no_proxy();
        }
        let http = builder.build().expect("the TLS backend is compiled in");
        Self {
            http,
            allow_private,
        }
    }

    /// POSTs `body` (JSON) to `url`, signed with `secret`.
    pub async fn post(
        &self,
        url: &str,
        delivery_id: i64,
        secret: &str,
        body: Vec<u8>,
    ) -> PostOutcome {
        let at = now_ms();
        let started = Instant::now();
        let result = self.send(url, delivery_id, secret, body).await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status, error) = match result {
            Ok(status) => (Some(status), None),
            Err(error) => (None, Some(error)),
        };
        PostOutcome {
            at,
            status,
            error,
            duration_ms,
        }
    }

    async fn send(
        &self,
        url: &str,
        delivery_id: i64,
        secret: &str,
        body: Vec<u8>,
    ) -> Result<u16, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        // The resolver sees names only; an address written in the URL is checked here.
        if let Some(ip) = literal_ip(&parsed).filter(|ip| !self.allow_private && !is_public(*ip)) {
            return Err(format!(
                "{ip} is a private or loopback address, which is not allowed"
            ));
        }
        let timestamp = now_ms() / 1000;
        let response = self
            .http
            .post(parsed)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, signature::sign(secret, timestamp, &body))
            .header(DELIVERY_HEADER, delivery_id.to_string())
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        Ok(response.status().as_u16())
    }
}

/// A reqwest error with its causes, which name what actually went wrong.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
