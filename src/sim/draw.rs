//! Pixels: deterministic pictures drawn from a seed, and the transformations Midjourney's
//! buttons stand for (enlarge a quadrant, vary, zoom out, pan, repaint a region, blend,
//! swap a face). Cheap on purpose: a grid is drawn and encoded in milliseconds.

use bytes::Bytes;
use image::imageops::{self, FilterType};
use image::{ImageEncoder, Rgb, RgbImage};

/// Side of a square grid by default; each quadrant is half of it.
pub const GRID: u32 = 512;

/// A 2x2 grid of four visibly different tiles drawn from `seed`.
pub fn grid(seed: u32, width: u32, height: u32) -> RgbImage {
    let (tw, th) = (width / 2, height / 2);
    let tiles = [0, 1, 2, 3].map(|q| tile(seed, q, tw, th));
    compose(&tiles)
}

/// Four equal tiles as a 2x2 grid (1 2 / 3 4).
pub fn compose(tiles: &[RgbImage; 4]) -> RgbImage {
    let (tw, th) = tiles[0].dimensions();
    let mut out = RgbImage::new(tw * 2, th * 2);
    for (q, tile) in tiles.iter().enumerate() {
        let (x, y) = ((q as u32 % 2) * tw, (q as u32 / 2) * th);
        imageops::replace(&mut out, tile, x.into(), y.into());
    }
    out
}

/// Quadrant `index` (1..4) of a grid.
pub fn quadrant(grid: &RgbImage, index: u8) -> RgbImage {
    let (tw, th) = (grid.width() / 2, grid.height() / 2);
    let q = u32::from(index.clamp(1, 4) - 1);
    imageops::crop_imm(grid, (q % 2) * tw, (q / 2) * th, tw, th).to_image()
}

pub fn enlarge(image: &RgbImage, factor: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    imageops::resize(image, w * factor, h * factor, FilterType::Triangle)
}

/// `source` at `width`x`height`, recoloured and marked according to `seed`; `strength` (0..1)
/// says how far it moves from the source.
pub fn variant(source: &RgbImage, seed: u32, strength: f32, width: u32, height: u32) -> RgbImage {
    let mut out = imageops::resize(source, width, height, FilterType::Triangle);
    let mut rng = Lcg(seed);
    let shift = [0, 1, 2].map(|_| (rng.unit() - 0.5) * 160.0 * strength);
    let mark = hsv(rng.unit() * 360.0, 0.7, 0.95);
    let (cx, cy) = (rng.unit() * width as f32, rng.unit() * height as f32);
    let radius = (0.1 + 0.2 * rng.unit()) * width.min(height) as f32;
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        for (c, value) in pixel.0.iter_mut().enumerate() {
            *value = (*value as f32 + shift[c]).clamp(0.0, 255.0) as u8;
        }
        if distance(x, y, cx, cy) < radius {
            *pixel = mix(*pixel, mark, strength * 0.6);
        }
    }
    out
}

/// Four variants of `source` as a grid of longer side `side` whose tiles have the source's
/// aspect.
pub fn variations(source: &RgbImage, seed: u32, strength: f32, side: u32) -> RgbImage {
    let (w, h) = fit(source.dimensions(), side / 2);
    let tiles =
        [0u32, 1, 2, 3].map(|q| variant(source, seed.wrapping_add(q * 7919), strength, w, h));
    compose(&tiles)
}

/// The source shrunk by `factor` in the middle of a canvas of its own size, the border filled
/// with its edge colours.
pub fn zoom_out(source: &RgbImage, factor: f32) -> RgbImage {
    let (w, h) = source.dimensions();
    let factor = factor.clamp(1.0, 2.0);
    let (iw, ih) = ((w as f32 / factor) as u32, (h as f32 / factor) as u32);
    let inner = imageops::resize(source, iw.max(1), ih.max(1), FilterType::Triangle);
    // A cheap blur: through 8x8 and back.
    let coarse = imageops::resize(source, 8, 8, FilterType::Triangle);
    let mut out = imageops::resize(&coarse, w, h, FilterType::Triangle);
    imageops::replace(
        &mut out,
        &inner,
        ((w - iw) / 2).into(),
        ((h - ih) / 2).into(),
    );
    out
}

/// The canvas extended by half its size towards `direction`, the new part mirrored from the
/// edge and blurred.
pub fn pan(source: &RgbImage, direction: crate::domain::PanDirection) -> RgbImage {
    use crate::domain::PanDirection::*;
    let (w, h) = source.dimensions();
    let horizontal = matches!(direction, Left | Right);
    let (nw, nh) = if horizontal {
        (w + w / 2, h)
    } else {
        (w, h + h / 2)
    };
    let mut out = RgbImage::new(nw, nh);
    let (ox, oy) = match direction {
        Left => (w / 2, 0),
        Up => (0, h / 2),
        Right | Down => (0, 0),
    };
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let sx = mirror(x as i64 - ox as i64, w);
        let sy = mirror(y as i64 - oy as i64, h);
        let inside = x >= ox && x < ox + w && y >= oy && y < oy + h;
        let p = *source.get_pixel(sx, sy);
        *pixel = if inside {
            p
        } else {
            mix(p, Rgb([128, 128, 128]), 0.35)
        };
    }
    out
}

/// Repaints the white part of `mask` with a pattern drawn from `seed`.
pub fn inpaint(source: &RgbImage, mask: &RgbImage, seed: u32) -> RgbImage {
    let (w, h) = source.dimensions();
    let mask = imageops::resize(mask, w, h, FilterType::Nearest);
    let fill = tile(seed, 0, w, h);
    let mut out = source.clone();
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let m = mask.get_pixel(x, y).0;
        if u32::from(m[0]) + u32::from(m[1]) + u32::from(m[2]) > 3 * 127 {
            *pixel = *fill.get_pixel(x, y);
        }
    }
    out
}

/// A grid of four mixes of the inputs, each tile weighted towards another input.
pub fn blend(images: &[RgbImage], width: u32, height: u32) -> RgbImage {
    let (tw, th) = (width / 2, height / 2);
    let scaled: Vec<RgbImage> = images
        .iter()
        .map(|i| imageops::resize(i, tw, th, FilterType::Triangle))
        .collect();
    let tiles = [0usize, 1, 2, 3].map(|q| {
        let weights: Vec<f32> = (0..scaled.len())
            .map(|i| {
                if (i + q) % scaled.len() == 0 {
                    3.0
                } else {
                    1.0
                }
            })
            .collect();
        let total: f32 = weights.iter().sum();
        RgbImage::from_fn(tw, th, |x, y| {
            let mut acc = [0.0f32; 3];
            for (image, weight) in scaled.iter().zip(&weights) {
                for (c, v) in image.get_pixel(x, y).0.iter().enumerate() {
                    acc[c] += *v as f32 * weight / total;
                }
            }
            Rgb(acc.map(|v| v as u8))
        })
    });
    compose(&tiles)
}

/// `target` (its longer side `side`) with `source` set into an ellipse in its middle.
pub fn swap_face(source: &RgbImage, target: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = fit(target.dimensions(), side);
    let mut out = imageops::resize(target, w, h, FilterType::Triangle);
    let (fw, fh) = (w * 2 / 5, h * 2 / 5);
    let face = imageops::resize(source, fw.max(1), fh.max(1), FilterType::Triangle);
    let (ox, oy) = ((w - fw) / 2, (h - fh) / 3);
    for (x, y, pixel) in face.enumerate_pixels() {
        let (nx, ny) = (x as f32 / fw as f32 - 0.5, y as f32 / fh as f32 - 0.5);
        let d = (nx * nx + ny * ny).sqrt() * 2.0;
        if d < 1.0 {
            let blend = ((1.0 - d) * 4.0).min(1.0);
            let under = out.get_pixel_mut(ox + x, oy + y);
            *under = mix(*under, *pixel, blend);
        }
    }
    out
}

/// A dimmed, small copy of `image` as progress `percent` would show it.
pub fn preview(image: &RgbImage, percent: u8) -> Bytes {
    let (w, h) = fit(image.dimensions(), 128);
    let mut small = imageops::resize(image, w, h, FilterType::Nearest);
    let t = 1.0 - f32::from(percent) / 100.0;
    for pixel in small.pixels_mut() {
        *pixel = mix(*pixel, Rgb([90, 90, 90]), t);
    }
    png(&small)
}

pub fn mean_color(image: &RgbImage) -> [u8; 3] {
    let mut acc = [0u64; 3];
    for pixel in image.pixels() {
        for (c, v) in pixel.0.iter().enumerate() {
            acc[c] += u64::from(*v);
        }
    }
    let n = u64::from(image.width() * image.height()).max(1);
    acc.map(|v| (v / n) as u8)
}

pub fn png(image: &RgbImage) -> Bytes {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    )
    .expect("encoding to memory cannot fail");
    Bytes::from(out)
}

/// Decodes an image with bounded memory.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    Ok(reader.decode().map_err(|e| e.to_string())?.to_rgb8())
}

/// Width and height with the longer side `long`, keeping the aspect.
pub fn fit((w, h): (u32, u32), long: u32) -> (u32, u32) {
    let scale = long as f32 / w.max(h).max(1) as f32;
    (
        ((w as f32 * scale) as u32).max(1),
        ((h as f32 * scale) as u32).max(1),
    )
}

/// One tile: a gradient in a hue picked by seed and quadrant, a disc, stripes, and `q + 1`
/// dots in the corner.
fn tile(seed: u32, q: u32, width: u32, height: u32) -> RgbImage {
    let mut rng = Lcg(seed ^ q.wrapping_mul(0x9E37_79B9));
    let hue = (seed % 360) as f32 + q as f32 * 90.0;
    let (top, bottom) = (hsv(hue, 0.55, 0.95), hsv(hue + 20.0, 0.8, 0.45));
    let disc = hsv(hue + 180.0, 0.75, 0.95);
    let (cx, cy) = (
        (0.25 + 0.5 * rng.unit()) * width as f32,
        (0.25 + 0.5 * rng.unit()) * height as f32,
    );
    let radius = (0.15 + 0.15 * rng.unit()) * width.min(height) as f32;
    let period = 12 + (rng.next() % 24);
    let dot = (width / 16).max(2);
    RgbImage::from_fn(width, height, |x, y| {
        let mut p = mix(top, bottom, y as f32 / height as f32);
        if ((x + y) / period) % 2 == 0 {
            p = mix(p, Rgb([255, 255, 255]), 0.12);
        }
        if distance(x, y, cx, cy) < radius {
            p = disc;
        }
        let (dx, dy) = (x / (dot * 2), y / (dot * 2));
        if dy == 0 && dx <= q && x % (dot * 2) < dot && y < dot {
            p = Rgb([20, 20, 20]);
        }
        p
    })
}

fn distance(x: u32, y: u32, cx: f32, cy: f32) -> f32 {
    ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt()
}

fn mirror(i: i64, len: u32) -> u32 {
    let len = i64::from(len);
    let period = 2 * len;
    let m = i.rem_euclid(period);
    (if m < len { m } else { period - 1 - m }) as u32
}

fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    Rgb([0, 1, 2].map(|c| (a.0[c] as f32 * (1.0 - t) + b.0[c] as f32 * t) as u8))
}

fn hsv(hue: f32, s: f32, v: f32) -> Rgb<u8> {
    let h = hue.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    Rgb([r, g, b].map(|u| ((u + m) * 255.0) as u8))
}

/// A tiny deterministic generator: the same seed draws the same picture everywhere.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }

    fn unit(&mut self) -> f32 {
        self.next() as f32 / (1u32 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_deterministic_and_quadrants_differ() {
        let a = grid(42, GRID, GRID);
        assert_eq!(a, grid(42, GRID, GRID));
        assert_ne!(a, grid(43, GRID, GRID));
        let quads: Vec<RgbImage> = (1..=4).map(|i| quadrant(&a, i)).collect();
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(mean_color(&quads[i]), mean_color(&quads[j]));
            }
        }
        assert_eq!(quads[0].dimensions(), (GRID / 2, GRID / 2));
    }

    #[test]
    fn canvas_operations_keep_or_extend_size() {
        let src = grid(7, 64, 64);
        assert_eq!(zoom_out(&src, 2.0).dimensions(), (64, 64));
        assert_eq!(
            pan(&src, crate::domain::PanDirection::Left).dimensions(),
            (96, 64)
        );
        assert_eq!(
            pan(&src, crate::domain::PanDirection::Down).dimensions(),
            (64, 96)
        );
        assert_eq!(decode(&png(&src)).unwrap(), src);
    }
}
