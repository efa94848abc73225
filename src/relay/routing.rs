//! Which channel gets a new task (SPEC 1.3, issue "Channels"): enabled channels that offer
//! the mode and bot type and have room, healthy ones only, highest priority first, spread by
//! weight within a priority. Health is a circuit breaker per channel: after a few failures in
//! a row the channel rests for a cool-down, then the next task is its trial; one success puts
//! it back, one more failure rests it again. No admin is needed either way.

use crate::domain::ids::now_ms;
use crate::store::Channel;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Outcomes kept per channel for its success rate.
const WINDOW: usize = 50;

/// Per-process view of how each channel is doing, and the weighted rotation's state.
pub struct ChannelHealth {
    failures_to_trip: u32,
    cooldown: Duration,
    channels: Mutex<HashMap<i64, Health>>,
}

#[derive(Default)]
struct Health {
    failures_in_a_row: u32,
    resting_until_ms: i64,
    outcomes: VecDeque<bool>,
    last_error: Option<(i64, String)>,
    /// Smooth weighted round robin: the channel's running credit.
    credit: i64,
}

/// What an admin sees about a channel's health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthView {
    /// `healthy`, `resting` (out of rotation until `resting_until`) or `trial` (its next
    /// task decides).
    pub state: &'static str,
    pub resting_until: Option<i64>,
    pub failures_in_a_row: u32,
    /// Share of the recent submissions it took, `null` before any.
    pub success_rate: Option<f64>,
    pub recent_error: Option<String>,
    pub recent_error_at: Option<i64>,
}

impl ChannelHealth {
    pub fn new(failures_to_trip: u32, cooldown: Duration) -> Self {
        Self {
            failures_to_trip: failures_to_trip.max(1),
            cooldown,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Health>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Orders eligible channels for one submission: resting channels are left out; the
    /// highest priority comes first, the first of a priority chosen by smooth weighted round
    /// robin (exact shares, evenly spread), the rest of it by weight as fallbacks.
    pub fn order(&self, eligible: Vec<Channel>) -> Vec<Channel> {
        let now = now_ms();
        let mut health = self.lock();
        let mut ready: Vec<Channel> = eligible
            .into_iter()
            .filter(|c| health.get(&c.id).is_none_or(|h| h.resting_until_ms <= now))
            .collect();
        ready.sort_by(|a, b| b.priority.cmp(&a.priority).then(b.weight.cmp(&a.weight)));
        let mut ordered = Vec::with_capacity(ready.len());
        let mut rest = ready.as_slice();
        while let Some(first) = rest.first() {
            let end = rest
                .iter()
                .position(|c| c.priority != first.priority)
                .unwrap_or(rest.len());
            let (group, tail) = rest.split_at(end);
            let total: i64 = group.iter().map(|c| c.weight.max(1)).sum();
            for channel in group {
                health.entry(channel.id).or_default().credit += channel.weight.max(1);
            }
            let best = (0..group.len())
                .max_by_key(|&i| (health[&group[i].id].credit, std::cmp::Reverse(i)))
                .unwrap_or(0);
            health.entry(group[best].id).or_default().credit -= total;
            ordered.push(group[best].clone());
            ordered.extend(
                group
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != best)
                    .map(|(_, c)| c.clone()),
            );
            rest = tail;
        }
        ordered
    }

    /// The channel took a task (or refused it for the client's reasons: it works).
    pub fn succeeded(&self, channel_id: i64) {
        let mut health = self.lock();
        let entry = health.entry(channel_id).or_default();
        entry.failures_in_a_row = 0;
        entry.resting_until_ms = 0;
        push(&mut entry.outcomes, true);
    }

    /// The channel failed to take a task (connection, HTTP 5xx, full, no account, timeout).
    pub fn failed(&self, channel_id: i64, error: &str) {
        let now = now_ms();
        let mut health = self.lock();
        let entry = health.entry(channel_id).or_default();
        entry.failures_in_a_row += 1;
        entry.last_error = Some((now, error.to_string()));
        push(&mut entry.outcomes, false);
        if entry.failures_in_a_row >= self.failures_to_trip {
            entry.resting_until_ms = now + self.cooldown.as_millis() as i64;
            tracing::warn!(
                channel_id,
                error,
                "channel taken out of rotation for a cool-down"
            );
        }
    }

    pub fn view(&self, channel_id: i64) -> HealthView {
        let now = now_ms();
        let health = self.lock();
        let Some(h) = health.get(&channel_id) else {
            return HealthView {
                state: "healthy",
                resting_until: None,
                failures_in_a_row: 0,
                success_rate: None,
                recent_error: None,
                recent_error_at: None,
            };
        };
        let state = if h.resting_until_ms > now {
            "resting"
        } else if h.failures_in_a_row >= self.failures_to_trip {
            "trial"
        } else {
            "healthy"
        };
        let successes = h.outcomes.iter().filter(|ok| **ok).count();
        HealthView {
            state,
            resting_until: (h.resting_until_ms > now).then_some(h.resting_until_ms),
            failures_in_a_row: h.failures_in_a_row,
            success_rate: (!h.outcomes.is_empty())
                .then(|| successes as f64 / h.outcomes.len() as f64),
            recent_error: h.last_error.as_ref().map(|(_, e)| e.clone()),
            recent_error_at: h.last_error.as_ref().map(|(at, _)| *at),
        }
    }
}

fn push(outcomes: &mut VecDeque<bool>, ok: bool) {
    if outcomes.len() == WINDOW {
        outcomes.pop_front();
    }
    outcomes.push_back(ok);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: i64, priority: i64, weight: i64) -> Channel {
        Channel {
            id,
            name: format!("c{id}"),
            base_url: String::new(),
            secret: String::new(),
            enabled: true,
            priority,
            weight,
            modes: String::new(),
            bot_types: String::new(),
            max_in_flight: None,
            pass_account_filter: false,
            is_local: false,
            callbacks: false,
            created_at: 0,
        }
    }

    #[test]
    fn weights_split_exactly_within_the_top_priority() {
        let health = ChannelHealth::new(3, Duration::from_secs(30));
        let channels = vec![channel(1, 0, 1), channel(2, 0, 3), channel(3, -1, 100)];
        let mut firsts = HashMap::new();
        for _ in 0..400 {
            let order = health.order(channels.clone());
            assert_eq!(order.len(), 3);
            assert_eq!(order[2].id, 3, "lower priority only as a fallback");
            *firsts.entry(order[0].id).or_insert(0) += 1;
        }
        assert_eq!((firsts[&1], firsts[&2]), (100, 300));
    }

    #[test]
    fn failing_channels_rest_then_get_a_trial() {
        let health = ChannelHealth::new(2, Duration::from_millis(0));
        health.failed(1, "HTTP 500");
        assert_eq!(health.view(1).state, "healthy");
        health.failed(1, "HTTP 500");
        // A zero cool-down: it is at once up for a trial.
        assert_eq!(health.view(1).state, "trial");
        assert_eq!(health.order(vec![channel(1, 0, 1)]).len(), 1);
        health.succeeded(1);
        let view = health.view(1);
        assert_eq!(
            (view.state, view.success_rate),
            ("healthy", Some(1.0 / 3.0))
        );
        assert_eq!(view.recent_error.as_deref(), Some("HTTP 500"));

        let resting = ChannelHealth::new(1, Duration::from_secs(60));
        resting.failed(7, "refused");
        assert_eq!(resting.view(7).state, "resting");
        assert!(resting.order(vec![channel(7, 0, 1)]).is_empty());
    }
}
