//! Data URLs (`data:image/png;base64,...`): how clients and the upstream protocol carry
//! images inside JSON.

use base64::Engine;

/// A decoded data URL: the declared MIME type and the bytes.
#[derive(Debug, Clone)]
pub struct DataUrl {
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// Why a string is not a usable data URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataUrlError {
    #[error("must be a data URL (data:image/...;base64,...)")]
    NotDataUrl,
    #[error("data URL must be base64-encoded")]
    NotBase64,
    #[error("invalid base64 data")]
    BadBase64,
    #[error("image is larger than {} MB", .0 / (1024 * 1024))]
    TooLarge(usize),
}

/// Decodes a base64 data URL of at most `max_bytes` decoded bytes. Oversized text is refused
/// before it is decoded.
pub fn decode(value: &str, max_bytes: usize) -> Result<DataUrl, DataUrlError> {
    let rest = value
        .trim()
        .strip_prefix("data:")
        .ok_or(DataUrlError::NotDataUrl)?;
    let (meta, data) = rest.split_once(',').ok_or(DataUrlError::NotDataUrl)?;
    let mime = meta
        .strip_suffix(";base64")
        .ok_or(DataUrlError::NotBase64)?;
    if data.len() > max_bytes / 3 * 4 + 8 {
        return Err(DataUrlError::TooLarge(max_bytes));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| DataUrlError::BadBase64)?;
    if bytes.len() > max_bytes {
        return Err(DataUrlError::TooLarge(max_bytes));
    }
    Ok(DataUrl {
        mime: mime.to_ascii_lowercase(),
        bytes,
    })
}

/// Encodes bytes as a data URL.
pub fn encode(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let url = encode("image/png", b"\x89PNG");
        let decoded = decode(&url, 100).unwrap();
        assert_eq!(
            (decoded.mime.as_str(), decoded.bytes.as_slice()),
            ("image/png", &b"\x89PNG"[..])
        );
        assert_eq!(
            decode("http://x", 100).unwrap_err(),
            DataUrlError::NotDataUrl
        );
        assert_eq!(
            decode("data:image/png,abc", 100).unwrap_err(),
            DataUrlError::NotBase64
        );
        assert_eq!(
            decode("data:image/png;base64,!!", 100).unwrap_err(),
            DataUrlError::BadBase64
        );
        assert!(matches!(
            decode(&encode("image/png", &[0; 200]), 100),
            Err(DataUrlError::TooLarge(_))
        ));
    }
}
