//! `X-Mjgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with
//! the hook secret of the task's API key. The timestamp is signed with the body, so that a
//! receiver can refuse old messages replayed to it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const HEADER: &str = "X-Mjgate-Signature";

/// The header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

/// Whether `header` is a valid signature of `body` made within `tolerance_secs` of `now`
/// (Unix seconds). What a receiver does; the gateway uses it only in tests.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if (now - timestamp).abs() > tolerance_secs {
        return false;
    }
    signatures.iter().any(|given| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(given).is_ok()
    })
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_secret_time_and_body() {
        let header = sign("whsec", 1_700_000_000, b"{\"id\":\"1\"}");
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        assert!(verify(
            "whsec",
            &header,
            b"{\"id\":\"1\"}",
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "whsec",
            &header,
            b"{\"id\":\"2\"}",
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "other",
            &header,
            b"{\"id\":\"1\"}",
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "whsec",
            &header,
            b"{\"id\":\"1\"}",
            1_700_001_000,
            300
        ));
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify(
            "whsec",
            &moved,
            b"{\"id\":\"1\"}",
            1_700_000_100,
            300
        ));
        assert!(!verify("whsec", "v1=00", b"", 0, 300));
    }
}
