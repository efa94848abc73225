//! Task ids in the midjourney-proxy shape: Unix milliseconds followed by three random digits,
//! 16 digits in all (SPEC 1.4). Uniqueness is enforced by the store; callers retry on conflict.

use rand::Rng;

/// Mints a task id for the given time.
pub fn mint_task_id(now_ms: i64) -> String {
    let suffix: u16 = rand::rng().random_range(0..1000);
    format!("{now_ms:013}{suffix:03}")
}

/// Whether `s` looks like a task id (16 digits). Used to reject garbage before a lookup.
pub fn is_task_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The current Unix time in milliseconds.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_sixteen_digits() {
        let id = mint_task_id(1_712_205_491_372);
        assert!(is_task_id(&id), "{id}");
        assert!(id.starts_with("1712205491372"));
        assert!(!is_task_id("12345"));
        assert!(!is_task_id("171220549137a123"));
    }
}
