//! The client for upstream midjourney-proxy servers: one shared HTTP client, the channel's
//! own secret on every call, and errors classified by whether the request may have arrived.
//! Files named by upstream answers are fetched through the [`net_guard`].

use crate::net_guard;
use crate::proto::{ListByConditionRequest, SubmitResult, TaskJson};
use crate::store::Channel;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Why an upstream call failed. The distinction that matters is whether the upstream may have
/// received the request: only requests it cannot have acted on are tried on another channel.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The request never reached the upstream (connection refused, DNS, TLS).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The upstream answered with an HTTP error status.
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// The request was sent but no answer came in time: the upstream may have the task.
    #[error("no answer in time")]
    Timeout,
    /// The answer was not what the protocol says.
    #[error("unreadable answer: {0}")]
    Protocol(String),
    /// The answer was larger than allowed.
    #[error("answer larger than {0} bytes")]
    TooLarge(u64),
    /// The link leads to an address the gateway does not fetch from.
    #[error("refused: {0}")]
    Refused(String),
}

impl UpstreamError {
    /// Whether another channel may be tried without risking a duplicate task.
    pub fn safe_to_retry_elsewhere(&self) -> bool {
        match self {
            UpstreamError::Connect(_) => true,
            // A 5xx means the upstream failed to handle it; 401/403 mean it refused us.
            UpstreamError::Status { status, .. } => {
                *status >= 500 || *status == 401 || *status == 403
            }
            _ => false,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_redirect() {
            UpstreamError::Refused(error_chain(&e))
        } else if e.is_connect() {
            UpstreamError::Connect(e.to_string())
        } else if e.is_timeout() {
            UpstreamError::Timeout
        } else if e.is_decode() {
            UpstreamError::Protocol(e.to_string())
        } else {
            // Failures mid-request (reset, closed connection) may have reached the upstream.
            UpstreamError::Timeout
        }
    }
}

/// The error and its causes on one line: reqwest puts the reason in the sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Talks to channels.
#[derive(Clone)]
pub struct UpstreamClient {
    /// Channel API calls: to the configured base URL, no redirects.
    http: reqwest::Client,
    /// Files on the public internet: only public addresses, each redirect hop checked.
    public_files: reqwest::Client,
    /// Files of channels marked local, which may live on private addresses.
    local_files: reqwest::Client,
}

impl UpstreamClient {
    /// `instance` goes into the User-Agent, so that an upstream's logs tell gateway
    /// processes apart.
    pub fn new(timeout: Duration, instance: &str) -> Self {
        let user_agent = format!("mjgate/{} ({instance})", env!("CARGO_PKG_VERSION"));
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(5).min(timeout))
                .user_agent(user_agent.clone())
        };
        let build = |b: reqwest::ClientBuilder| b.build().expect("the TLS backend is compiled in");
        Self {
            http: build(builder().redirect(reqwest::redirect::Policy::none())),
            public_files: build(
                // No proxy: a proxy would resolve names itself, past the guard.
                builder()
                    .dns_resolver(std::sync::Arc::new(net_guard::PublicOnly))
                    .redirect(net_guard::redirect_policy())
                    .no_proxy(),
            ),
            local_files: build(
                builder().redirect(reqwest::redirect::Policy::limited(net_guard::MAX_REDIRECTS)),
            ),
        }
    }

    /// POSTs a submit body to `{base}/mj{path}`. The speed mode travels in the body's
    /// `accountFilter.modes`, which every midjourney-proxy-plus understands.
    pub async fn submit<B: Serialize + ?Sized>(
        &self,
        channel: &Channel,
        path: &str,
        body: &B,
    ) -> Result<SubmitResult, UpstreamError> {
        let url = mj_url(channel, path);
        self.call(self.http.post(url).json(body), channel).await
    }

    /// The channel's current view of its tasks among `ids` (at most 100 per call).
    pub async fn list_by_condition(
        &self,
        channel: &Channel,
        ids: Vec<String>,
    ) -> Result<Vec<TaskJson>, UpstreamError> {
        let url = mj_url(channel, "/task/list-by-condition");
        let body = ListByConditionRequest { ids };
        self.call(self.http.post(url).json(&body), channel).await
    }

    /// `GET /mj/task/{id}/image-seed`.
    pub async fn image_seed(
        &self,
        channel: &Channel,
        upstream_id: &str,
    ) -> Result<SubmitResult, UpstreamError> {
        let url = mj_url(channel, &format!("/task/{upstream_id}/image-seed"));
        self.call(self.http.get(url), channel).await
    }

    /// Starts fetching a file an upstream named (an image, a video); the body is streamed
    /// and cut off past `max_bytes`. Unless `allow_private` (a channel marked local), links
    /// into loopback, private or link-local addresses are refused, redirects included.
    pub async fn fetch_image(
        &self,
        url: &str,
        max_bytes: u64,
        allow_private: bool,
    ) -> Result<ImageStream, UpstreamError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| UpstreamError::Refused(format!("{url}: {e}")))?;
        let client = if allow_private {
            &self.local_files
        } else {
            net_guard::check_public(&parsed)
                .await
                .map_err(UpstreamError::Refused)?;
            &self.public_files
        };
        let response = client
            .get(parsed)
            .send()
            .await
            .map_err(UpstreamError::from_reqwest)?;
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status: status.as_u16(),
                body: String::new(),
            });
        }
        if response.content_length().is_some_and(|len| len > max_bytes) {
            return Err(UpstreamError::TooLarge(max_bytes));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let content_length = response.content_length();
        let mut seen = 0u64;
        let body = response.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()))?;
            seen += chunk.len() as u64;
            if seen > max_bytes {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    format!("larger than {max_bytes} bytes"),
                ));
            }
            Ok(chunk)
        });
        Ok(ImageStream {
            content_type,
            content_length,
            body: Box::pin(body),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        channel: &Channel,
    ) -> Result<T, UpstreamError> {
        let mut request = request;
        if !channel.secret.is_empty() {
            request = request.header("mj-api-secret", &channel.secret);
        }
        let response = request.send().await.map_err(UpstreamError::from_reqwest)?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(UpstreamError::from_reqwest)?;
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| UpstreamError::Protocol(e.to_string()))
    }
}

/// A streamed upstream image.
pub struct ImageStream {
    pub content_type: String,
    pub content_length: Option<u64>,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
}

fn mj_url(channel: &Channel, path: &str) -> String {
    let base = channel.base_url.trim_end_matches('/');
    format!("{base}/mj{path}")
}
