//! Upstream callbacks (SPEC 5): a channel with callbacks on is given the gateway's own URL as
//! each task's `notifyHook`, so that it reports changes at once instead of waiting for the
//! next poll. The upstream only echoes that URL back, so the URL carries the proof: a secret
//! per channel, derived from the gateway's secret so that every process on one database
//! agrees on it without storing it.

use crate::state::AppState;

/// The route the upstream calls, under the gateway's base URL.
pub fn callback_url(state: &AppState, channel_id: i64) -> String {
    format!(
        "{}/mj/callback/{channel_id}?secret={}",
        state.base_url,
        state.signer.sign(&subject(channel_id))
    )
}

/// Whether `secret` is the callback secret of `channel_id` (in constant time).
pub fn verify_secret(state: &AppState, channel_id: i64, secret: &str) -> bool {
    state.signer.verify(&subject(channel_id), secret)
}

/// What is signed: distinct from task ids, whose signatures make image URLs.
fn subject(channel_id: i64) -> String {
    format!("upstream-callback:{channel_id}")
}
