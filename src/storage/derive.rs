//! Images cut from a stored image: one quadrant of a 2x2 grid (`?part=1..4`) and downscaled
//! copies (`?size=N`). Each is cut once, stored beside its source and served from storage
//! afterwards. Decoding is bounded, so that a hostile upstream image (a small file that
//! claims enormous dimensions) is refused instead of exhausting memory.

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::Cursor;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Largest width or height decoded.
pub const MAX_SIDE: u32 = 8192;
/// Most memory one decode may allocate.
pub const MAX_DECODE_BYTES: u64 = 192 * 1024 * 1024;
/// The range of `?size=`.
pub const SIZES: std::ops::RangeInclusive<u32> = 16..=2048;

/// A derived image: a grid quadrant, a size bound, or both (the quadrant, then scaled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// 1 top left, 2 top right, 3 bottom left, 4 bottom right (the U1..U4 order).
    pub part: Option<u8>,
    /// The longest side, at most; images are never enlarged.
    pub size: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error("rendering stopped: {0}")]
    Stopped(String),
    #[error("the image cannot be decoded: {0}")]
    Decode(#[from] image::ImageError),
}

impl Variant {
    /// The variant that `?part=` and `?size=` ask for; `None` for the image itself.
    pub fn from_query(part: Option<&str>, size: Option<&str>) -> Result<Option<Self>, String> {
        let part = part
            .map(|p| match p.trim().parse::<u8>() {
                Ok(n @ 1..=4) => Ok(n),
                _ => Err(format!("part must be 1, 2, 3 or 4, not `{p}`")),
            })
            .transpose()?;
        let size = size
            .map(|s| match s.trim().parse::<u32>() {
                Ok(n) if SIZES.contains(&n) => Ok(n),
                _ => Err(format!(
                    "size must be a number from {} to {}, not `{s}`",
                    SIZES.start(),
                    SIZES.end()
                )),
            })
            .transpose()?;
        Ok((part.is_some() || size.is_some()).then_some(Self { part, size }))
    }

    /// The storage key of this variant of the file at `source_key`.
    pub fn key(&self, source_key: &str) -> String {
        format!("{source_key}.{}.png", self.suffix())
    }

    /// The entity tag of this variant of a file tagged `source_etag`: the cut is a pure
    /// function of the source, so the tag can be known without reading the cut.
    pub fn etag(&self, source_etag: &str) -> String {
        format!("\"{}-{}\"", source_etag.trim_matches('"'), self.suffix())
    }

    fn suffix(&self) -> String {
        let part = self.part.map(|p| format!("part{p}")).unwrap_or_default();
        let size = self.size.map(|s| format!("s{s}")).unwrap_or_default();
        [part, size]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Decodes `source` (within the limits), cuts, and encodes the result as PNG.
    /// CPU-bound: call it from a blocking thread.
    pub fn render(&self, source: &[u8]) -> Result<Vec<u8>, DeriveError> {
        let mut reader = ImageReader::new(Cursor::new(source))
            .with_guessed_format()
            .map_err(|e| DeriveError::Decode(image::ImageError::IoError(e)))?;
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        reader.limits(limits);
        let mut image = reader.decode()?;
        if let Some(part) = self.part {
            image = quadrant(&image, part);
        }
        if let Some(size) = self.size {
            if image.width() > size || image.height() > size {
                image = image.thumbnail(size, size);
            }
        }
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png)?;
        Ok(out.into_inner())
    }
}

/// Renders variants on blocking threads, a few at a time, so that memory stays bounded by
/// `slots` decodes however many requests arrive.
#[derive(Clone, Debug)]
pub struct Renderer {
    slots: Arc<Semaphore>,
}

impl Renderer {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    pub async fn render(&self, variant: Variant, source: Bytes) -> Result<Vec<u8>, DeriveError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || variant.render(&source))
            .await
            .map_err(|e| DeriveError::Stopped(e.to_string()))?
    }
}

/// Quadrant `part` (1..=4) of a 2x2 grid.
fn quadrant(image: &DynamicImage, part: u8) -> DynamicImage {
    let q = u32::from(part.clamp(1, 4) - 1);
    let (w, h) = (image.width() / 2, image.height() / 2);
    image.crop_imm((q % 2) * w, (q / 2) * h, w.max(1), h.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn queries_parse_within_bounds() {
        assert_eq!(Variant::from_query(None, None), Ok(None));
        let v = Variant::from_query(Some("3"), Some("256"))
            .unwrap()
            .unwrap();
        assert_eq!((v.part, v.size), (Some(3), Some(256)));
        assert_eq!(v.key("tasks/1/image"), "tasks/1/image.part3.s256.png");
        assert_eq!(v.etag("\"abc\""), "\"abc-part3.s256\"");
        assert!(Variant::from_query(Some("5"), None).is_err());
        assert!(Variant::from_query(Some("x"), None).is_err());
        assert!(Variant::from_query(None, Some("8")).is_err());
        assert!(Variant::from_query(None, Some("4096")).is_err());
    }

    #[test]
    fn parts_are_quadrants_in_upscale_order() {
        let mut grid = RgbImage::new(4, 4);
        for (x, y, p) in grid.enumerate_pixels_mut() {
            *p = Rgb([(x / 2 * 100) as u8, (y / 2 * 100) as u8, 0]);
        }
        let variant = Variant {
            part: Some(3),
            size: None,
        };
        let part = image::load_from_memory(&variant.render(&png(&grid)).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(part.dimensions(), (2, 2));
        assert!(part.pixels().all(|p| *p == Rgb([0, 100, 0])));
    }

    #[test]
    fn sizes_bound_the_longest_side_and_never_enlarge() {
        let wide = png(&RgbImage::new(400, 200));
        let small = Variant {
            part: None,
            size: Some(100),
        };
        let out = image::load_from_memory(&small.render(&wide).unwrap()).unwrap();
        assert_eq!((out.width(), out.height()), (100, 50));
        let big = Variant {
            part: None,
            size: Some(1000),
        };
        let out = image::load_from_memory(&big.render(&wide).unwrap()).unwrap();
        assert_eq!((out.width(), out.height()), (400, 200));
    }

    #[test]
    fn huge_claimed_dimensions_are_refused_before_decoding() {
        // A valid PNG header that claims 100000 x 100000 pixels, and no pixel data.
        let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        bomb.extend_from_slice(&13u32.to_be_bytes());
        bomb.extend_from_slice(&ihdr);
        bomb.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        let variant = Variant {
            part: Some(1),
            size: None,
        };
        match variant.render(&bomb) {
            Err(DeriveError::Decode(image::ImageError::Limits(_))) => {}
            other => panic!("expected a limits error, got {other:?}"),
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
