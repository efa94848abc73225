//! API keys, access tokens and signatures. Secrets are random; only their hashes are stored.

use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new API key: `sk-` and 48 letters and digits (SPEC 1.1).
pub fn new_api_key() -> String {
    format!("sk-{}", random_alphanumeric(48))
}

/// A new access token for the management API.
pub fn new_access_token() -> String {
    random_alphanumeric(32)
}

/// A new random secret for signing.
pub fn new_signing_secret() -> String {
    random_alphanumeric(48)
}

/// The stored form of a key or token. The secrets are long and random, so a plain SHA-256
/// is enough: there is nothing to brute-force.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What lists show of a key: its first and last characters.
pub fn key_hint(key: &str) -> String {
    let head: String = key.chars().take(7).collect();
    let tail: String = {
        let chars: Vec<char> = key.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    format!("{head}…{tail}")
}

/// Whether a string has the shape of an API key, so that garbage costs no lookup.
pub fn looks_like_api_key(s: &str) -> bool {
    s.len() == 51 && s.starts_with("sk-") && s[3..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Signs and checks values (such as image URLs) with a server secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    /// A short hex signature of `value`: 128 bits of HMAC-SHA256.
    pub fn sign(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Constant-time check of a signature made by [`Signer::sign`].
    pub fn verify(&self, value: &str, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(value.as_bytes());
        mac.verify_truncated_left(&given).is_ok() && given.len() == 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let key = new_api_key();
        assert!(looks_like_api_key(&key), "{key}");
        assert_ne!(key, new_api_key());
        assert_eq!(hash_secret(&key).len(), 64);
        assert!(key_hint(&key).starts_with("sk-"));
        assert!(!looks_like_api_key("sk-short"));
    }

    #[test]
    fn signatures_verify_only_for_their_value() {
        let signer = Signer::new("s3cret");
        let sig = signer.sign("1712205491372123");
        assert!(signer.verify("1712205491372123", &sig));
        assert!(!signer.verify("1712205491372124", &sig));
        assert!(!signer.verify("1712205491372123", &sig[..30]));
        assert!(!signer.verify("1712205491372123", "zz"));
        assert!(!Signer::new("other").verify("1712205491372123", &sig));
    }
}
