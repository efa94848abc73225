//! Checks of client input (SPEC 1.2). Each failure names the field.

use super::error::ApiError;
use crate::domain::{BotType, CustomId, Dimensions, Mode, data_url};
use crate::proto::AccountFilter;
use image::ImageFormat;

/// Largest decoded image a client may send.
pub const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;
const MAX_PROMPT_CHARS: usize = 8192;
const MAX_STATE_CHARS: usize = 255;
const MAX_HOOK_CHARS: usize = 2000;

fn invalid(message: String) -> ApiError {
    ApiError::bad_request(message)
}

/// A required, non-blank prompt of sane length.
pub fn prompt(field: &str, value: Option<&str>) -> Result<String, ApiError> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > MAX_PROMPT_CHARS {
        return Err(invalid(format!(
            "{field} is longer than {MAX_PROMPT_CHARS} characters"
        )));
    }
    Ok(value.to_string())
}

pub fn bot_type(value: Option<&str>) -> Result<BotType, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(BotType::default()),
        Some(v) => v.parse().map_err(|_| {
            invalid(format!(
                "botType must be MID_JOURNEY or NIJI_JOURNEY, not `{v}`"
            ))
        }),
    }
}

pub fn dimensions(value: Option<&str>) -> Result<Dimensions, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(Dimensions::default()),
        Some(v) => v.parse().map_err(|_| {
            invalid(format!(
                "dimensions must be PORTRAIT, SQUARE or LANDSCAPE, not `{v}`"
            ))
        }),
    }
}

pub fn state(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(s) if s.chars().count() > MAX_STATE_CHARS => Err(invalid(format!(
            "state is longer than {MAX_STATE_CHARS} characters"
        ))),
        other => Ok(other),
    }
}

/// An http(s) URL of bounded length.
pub fn http_url(field: &str, value: &str) -> Result<reqwest::Url, ApiError> {
    if value.len() > MAX_HOOK_CHARS {
        return Err(invalid(format!(
            "{field} is longer than {MAX_HOOK_CHARS} characters"
        )));
    }
    let url = reqwest::Url::parse(value)
        .map_err(|e| invalid(format!("{field} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!("{field} must be an http(s) URL")));
    }
    Ok(url)
}

pub fn notify_hook(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => http_url("notifyHook", v.trim()).map(|url| Some(url.to_string())),
    }
}

/// Refuses a hook (already a valid URL) that is or resolves to a private, loopback or
/// link-local address, unless `allow_private`.
pub async fn notify_hook_address(hook: &str, allow_private: bool) -> Result<(), ApiError> {
    if allow_private {
        return Ok(());
    }
    let url = http_url("notifyHook", hook)?;
    crate::net_guard::check_public(&url)
        .await
        .map_err(|why| invalid(format!("notifyHook {why}")))
}

/// The speed mode: the route's prefix wins; else at most one known `accountFilter.modes`.
pub fn mode(route: Option<Mode>, filter: Option<&AccountFilter>) -> Result<Option<Mode>, ApiError> {
    let mut modes = Vec::new();
    for m in filter.map(|f| f.modes.as_slice()).unwrap_or_default() {
        modes.push(
            m.parse::<Mode>()
                .map_err(|_| invalid(format!("accountFilter.modes: unknown mode `{m}`")))?,
        );
    }
    Ok(route.or_else(|| modes.first().copied()))
}

pub fn custom_id(value: Option<&str>) -> Result<CustomId, ApiError> {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(invalid("customId must not be empty".to_string()));
    }
    CustomId::parse(value).map_err(invalid)
}

/// A required task id field.
pub fn task_id(value: Option<&str>) -> Result<String, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Ok(v.to_string()),
        None => Err(invalid("taskId must not be empty".to_string())),
    }
}

/// A data URL (`data:image/png;base64,...`) holding a JPEG, PNG, still GIF or WEBP image of
/// at most 4 MB, checked by its bytes.
pub fn image_data_url(field: &str, value: &str) -> Result<(), ApiError> {
    let bad = |why: &str| invalid(format!("{field}: {why}"));
    let url = data_url::decode(value, MAX_IMAGE_BYTES).map_err(|e| bad(&e.to_string()))?;
    let declared = match url.mime.as_str() {
        "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        _ => return Err(bad("image type must be JPEG, PNG, GIF or WEBP")),
    };
    let bytes = url.bytes;
    let actual = image::guess_format(&bytes).map_err(|_| bad("data is not an image"))?;
    if actual != declared {
        return Err(bad("image data does not match its declared type"));
    }
    check_decodable(&bytes, actual).map_err(|why| bad(&why))
}

/// Reads the image header (dimensions) and, for GIF, refuses animations.
fn check_decodable(bytes: &[u8], format: ImageFormat) -> Result<(), String> {
    let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|_| "image data is corrupt".to_string())?;
    if w == 0 || h == 0 {
        return Err("image has no pixels".to_string());
    }
    if format == ImageFormat::Gif {
        use image::AnimationDecoder;
        let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes))
            .map_err(|_| "image data is corrupt".to_string())?;
        if decoder.into_frames().take(2).count() > 1 {
            return Err("animated GIFs are not accepted".to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_data_url() -> String {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 10, 10]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        data_url::encode("image/png", &out.into_inner())
    }

    #[test]
    fn accepts_a_real_png() {
        image_data_url("base64Array[0]", &png_data_url()).unwrap();
    }

    #[test]
    fn refuses_lies_and_garbage() {
        let png = png_data_url();
        let as_jpeg = png.replace("image/png", "image/jpeg");
        for bad in [
            "hello".to_string(),
            "data:image/png,abc".to_string(),
            "data:text/plain;base64,aGVsbG8=".to_string(),
            "data:image/png;base64,!!!".to_string(),
            "data:image/png;base64,aGVsbG8=".to_string(),
            as_jpeg,
        ] {
            let err = image_data_url("base64", &bad).unwrap_err();
            assert!(err.to_string().starts_with("base64: "), "{err}");
        }
    }

    #[test]
    fn fields_are_named() {
        assert!(
            prompt("prompt", Some("  "))
                .unwrap_err()
                .to_string()
                .contains("prompt")
        );
        assert!(
            bot_type(Some("DALL_E"))
                .unwrap_err()
                .to_string()
                .contains("botType")
        );
        assert!(state(Some("x".repeat(256))).is_err());
        assert!(notify_hook(Some("ftp://x".into())).is_err());
        assert_eq!(
            notify_hook(Some("https://example.com/hook".into()))
                .unwrap()
                .as_deref(),
            Some("https://example.com/hook")
        );
        let filter = AccountFilter {
            modes: vec!["SLOW".into()],
            ..Default::default()
        };
        assert!(mode(None, Some(&filter)).is_err());
    }
}
