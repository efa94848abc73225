//! What a simulated job produces: its picture, its text (describe, shorten) and the buttons
//! Midjourney would put under it.

use super::draw;
use crate::domain::{Button, ButtonAction, CustomId, Dimensions, PanDirection};
use bytes::Bytes;
use image::RgbImage;

/// The work a task stands for, with its inputs already decoded or fetched.
#[derive(Clone)]
pub(super) enum Job {
    /// A fresh grid from the prompt and seed (imagine, reroll), mixing in reference images.
    Grid {
        refs: Vec<RgbImage>,
    },
    /// Four variations of a source image (PNG), or of one quadrant of it.
    Vary {
        source: Bytes,
        quadrant: Option<u8>,
        strength: f32,
    },
    /// One quadrant of a grid, enlarged.
    Upscale {
        grid: Bytes,
        index: u8,
    },
    /// An upscale upscaled again.
    Enlarge {
        source: Bytes,
    },
    Zoom {
        source: Bytes,
        factor: f32,
    },
    Pan {
        source: Bytes,
        direction: PanDirection,
    },
    Inpaint {
        source: Bytes,
        mask: RgbImage,
    },
    Blend {
        images: Vec<RgbImage>,
        dimensions: Dimensions,
    },
    /// Describe an image (already stored, at `url`) or a link the simulator cannot fetch.
    Describe {
        image: Option<RgbImage>,
        url: String,
    },
    Shorten,
    SwapFace {
        source: RgbImage,
        target: RgbImage,
    },
    /// A task in `MODAL`: the button pressed and the image (or describe text) it was under.
    Pending {
        action: ButtonAction,
        source: Option<Bytes>,
        text: String,
    },
}

/// A finished job.
pub(super) struct Rendered {
    pub png: Option<Bytes>,
    /// A small copy of the picture for progress previews.
    pub preview: Option<RgbImage>,
    /// The image link when the job made no picture of its own (describe).
    pub image_url: Option<String>,
    /// Replaces the task's prompt (describe, shorten).
    pub text: Option<String>,
    pub buttons: Vec<Button>,
    /// Words for the image file name.
    pub prompt_for_name: String,
}

/// Produces a job's result. CPU-bound: run it off the async threads.
/// `side` is the longer side of a grid.
pub(super) fn render(
    job: Job,
    prompt: &str,
    seed: u32,
    hash: &str,
    side: u32,
) -> Result<Rendered, String> {
    let decode =
        |png: &Bytes| draw::decode(png).map_err(|e| format!("the source image is unreadable: {e}"));
    let grid_buttons = || grid_buttons(hash);
    let (picture, buttons, text, image_url) = match job {
        Job::Grid { refs } => {
            let mut grid = draw::grid(seed, side, side);
            if !refs.is_empty() {
                let mut inputs = refs;
                inputs.push(grid);
                grid = draw::blend(&inputs, side, side);
            }
            (Some(grid), grid_buttons(), None, None)
        }
        Job::Vary {
            source,
            quadrant,
            strength,
        } => {
            let source = decode(&source)?;
            let source = match quadrant {
                Some(index) => draw::quadrant(&source, index),
                None => source,
            };
            (
                Some(draw::variations(&source, seed, strength, side)),
                grid_buttons(),
                None,
                None,
            )
        }
        Job::Upscale { grid, index } => {
            let quadrant = draw::quadrant(&decode(&grid)?, index);
            (
                Some(draw::enlarge(&quadrant, 2)),
                upscale_buttons(hash),
                None,
                None,
            )
        }
        Job::Enlarge { source } => (
            Some(draw::enlarge(&decode(&source)?, 2)),
            upscale_buttons(hash),
            None,
            None,
        ),
        Job::Zoom { source, factor } => {
            let zoomed = draw::zoom_out(&decode(&source)?, factor);
            (
                Some(draw::variations(&zoomed, seed, 0.1, side)),
                grid_buttons(),
                None,
                None,
            )
        }
        Job::Pan { source, direction } => {
            let panned = draw::pan(&decode(&source)?, direction);
            (
                Some(draw::variations(&panned, seed, 0.1, side)),
                grid_buttons(),
                None,
                None,
            )
        }
        Job::Inpaint { source, mask } => {
            let painted = draw::inpaint(&decode(&source)?, &mask, seed);
            (
                Some(draw::variations(&painted, seed, 0.1, side)),
                grid_buttons(),
                None,
                None,
            )
        }
        Job::Blend { images, dimensions } => {
            let (w, h) = dimensions.canvas(side);
            (Some(draw::blend(&images, w, h)), grid_buttons(), None, None)
        }
        Job::Describe { image, url } => {
            let text = describe(image.as_ref(), &url);
            (None, describe_buttons(), Some(text), Some(url))
        }
        Job::Shorten => (None, Vec::new(), Some(shorten(prompt)), None),
        Job::SwapFace { source, target } => (
            Some(draw::swap_face(&source, &target, side)),
            Vec::new(),
            None,
            None,
        ),
        Job::Pending { .. } => return Err("the pop-up was never submitted".to_string()),
    };
    Ok(Rendered {
        png: picture.as_ref().map(draw::png),
        preview: picture,
        image_url,
        text,
        buttons,
        prompt_for_name: prompt.to_string(),
    })
}

/// The picture a `MODAL` task's button acts on, once the pop-up is submitted.
pub(super) fn confirm(
    action: &ButtonAction,
    source: Option<Bytes>,
    mask: Option<RgbImage>,
    zoom: f32,
) -> Result<Job, &'static str> {
    let source = || source.clone().ok_or("关联任务不存在或已失效");
    Ok(match action {
        ButtonAction::CustomZoom => Job::Zoom {
            source: source()?,
            factor: zoom,
        },
        ButtonAction::VaryRegion => Job::Inpaint {
            source: source()?,
            mask: mask.ok_or("maskBase64不能为空")?,
        },
        ButtonAction::PicReader { .. } => Job::Grid { refs: Vec::new() },
        _ => return Err("任务状态错误"),
    })
}

fn button(action: ButtonAction, hash: &str, emoji: &str, label: &str) -> Button {
    Button {
        custom_id: CustomId::new(action, hash).to_string(),
        emoji: emoji.to_string(),
        label: label.to_string(),
        style: 2,
        kind: 2,
    }
}

/// Under a grid: U1..U4, 🔄, V1..V4.
pub(super) fn grid_buttons(hash: &str) -> Vec<Button> {
    let mut buttons: Vec<Button> = (1..=4)
        .map(|index| {
            button(
                ButtonAction::Upscale { index },
                hash,
                "",
                &format!("U{index}"),
            )
        })
        .collect();
    buttons.push(button(ButtonAction::Reroll, hash, "🔄", ""));
    buttons.extend((1..=4).map(|index| {
        button(
            ButtonAction::Variation { index },
            hash,
            "",
            &format!("V{index}"),
        )
    }));
    buttons
}

/// Under an upscale (Midjourney v6).
pub(super) fn upscale_buttons(hash: &str) -> Vec<Button> {
    let again = |creative| ButtonAction::UpscaleAgain {
        version: "v6".to_string(),
        creative,
    };
    let mut buttons = vec![
        button(again(false), hash, "", "Upscale (Subtle)"),
        button(again(true), hash, "", "Upscale (Creative)"),
        button(ButtonAction::VarySubtle, hash, "🪄", "Vary (Subtle)"),
        button(ButtonAction::VaryStrong, hash, "🪄", "Vary (Strong)"),
        button(ButtonAction::VaryRegion, hash, "🖌️", "Vary (Region)"),
        button(
            ButtonAction::ZoomOut { percent: 50 },
            hash,
            "🔍",
            "Zoom Out 2x",
        ),
        button(
            ButtonAction::ZoomOut { percent: 75 },
            hash,
            "🔍",
            "Zoom Out 1.5x",
        ),
        button(ButtonAction::CustomZoom, hash, "🔍", "Custom Zoom"),
    ];
    let arrows = ["⬅️", "➡️", "⬆️", "⬇️"];
    buttons.extend(
        PanDirection::ALL
            .into_iter()
            .zip(arrows)
            .map(|(direction, arrow)| button(ButtonAction::Pan { direction }, hash, arrow, "")),
    );
    buttons
}

/// Under a describe: imagine one of the four prompts, or describe again.
fn describe_buttons() -> Vec<Button> {
    let plain = |action: ButtonAction, emoji: &str, label: &str| Button {
        custom_id: CustomId { action, hash: None }.to_string(),
        emoji: emoji.to_string(),
        label: label.to_string(),
        style: 2,
        kind: 2,
    };
    let mut buttons: Vec<Button> = (1..=4)
        .map(|index| plain(ButtonAction::PicReader { index }, "", &index.to_string()))
        .collect();
    buttons.push(plain(ButtonAction::PicReaderRetry, "🔄", ""));
    buttons
}

const NUMBERS: [&str; 4] = ["1️⃣", "2️⃣", "3️⃣", "4️⃣"];

/// Four prompts in Midjourney's describe layout, from the image's colour and shape.
fn describe(image: Option<&RgbImage>, url: &str) -> String {
    let (color, ratio) = match image {
        Some(image) => (
            color_name(draw::mean_color(image)),
            aspect(image.dimensions()),
        ),
        None => ("muted", "1:1".to_string()),
    };
    let subject = if image.is_some() {
        "composition"
    } else {
        url.rsplit('/').next().unwrap_or("image")
    };
    let styles = [
        "soft diffused light, minimalism",
        "bold geometric shapes, flat illustration",
        "dreamy atmosphere, watercolor texture",
        "high contrast, cinematic still",
    ];
    NUMBERS
        .iter()
        .zip(styles)
        .map(|(n, style)| format!("{n} a {color} abstract {subject}, {style} --ar {ratio}"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Midjourney's `/shorten` analysis: important tokens and five shorter prompts.
fn shorten(prompt: &str) -> String {
    let words: Vec<&str> = prompt.split_whitespace().filter(|w| w.len() > 3).collect();
    let tokens = if words.is_empty() {
        prompt.trim().to_string()
    } else {
        words.join(", ")
    };
    let shorter: Vec<String> = (1..=5)
        .map(|n| {
            let keep = words.len().saturating_sub(n - 1).max(1);
            let short = words
                .iter()
                .take(keep)
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let short = if short.is_empty() {
                prompt.trim()
            } else {
                &short
            };
            format!("{} {short}", ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣"][n - 1])
        })
        .collect();
    format!(
        "**Important tokens**\n{tokens}\n\n**Shortened prompts**\n{}",
        shorter.join("\n\n")
    )
}

fn color_name([r, g, b]: [u8; 3]) -> &'static str {
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    if max < 60 {
        "dark"
    } else if max - min < 25 {
        if max > 200 { "white" } else { "grey" }
    } else if max == r {
        if g > b { "orange" } else { "red" }
    } else if max == g {
        "green"
    } else {
        "blue"
    }
}

fn aspect((w, h): (u32, u32)) -> String {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(w, h).max(1);
    format!("{}:{}", w / g, h / g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_parse_back_into_their_actions() {
        let hash = "0b2d6f55-6f2e-4d0c-9e1a-3c9c1d0e6f11";
        for b in grid_buttons(hash)
            .iter()
            .chain(&upscale_buttons(hash))
            .chain(&describe_buttons())
        {
            CustomId::parse(&b.custom_id).unwrap();
        }
        assert_eq!(grid_buttons(hash).len(), 9);
        assert_eq!(upscale_buttons(hash).len(), 12);
    }

    #[test]
    fn describe_gives_four_numbered_prompts() {
        let text = describe(Some(&draw::grid(1, 64, 96)), "x");
        assert_eq!(text.split("\n\n").count(), 4);
        assert!(
            text.starts_with("1️⃣ ") && text.contains("--ar 2:3"),
            "{text}"
        );
    }
}
