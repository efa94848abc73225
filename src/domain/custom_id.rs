//! The customIds of Midjourney's buttons (SPEC 1.6): parsed into what they do, and built back.
//!
//! Parsing is total: any string either parses or yields a reason; nothing panics.

use super::task::TaskAction;
use std::fmt;

/// Direction of a pan button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanDirection {
    Left,
    Right,
    Up,
    Down,
}

impl PanDirection {
    pub const ALL: [PanDirection; 4] = [Self::Left, Self::Right, Self::Up, Self::Down];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// What pressing a button does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonAction {
    /// U1..U4 on a grid.
    Upscale { index: u8 },
    /// V1..V4 on a grid.
    Variation { index: u8 },
    /// 🔄 on a grid.
    Reroll,
    /// Vary (Subtle) on an upscale.
    VarySubtle,
    /// Vary (Strong) on an upscale.
    VaryStrong,
    /// Upscale (Subtle) / (Creative) on an upscale; `version` is the model version (`v6`).
    UpscaleAgain { version: String, creative: bool },
    /// Zoom Out 2x (50) or 1.5x (75).
    ZoomOut { percent: u8 },
    /// The four arrows.
    Pan { direction: PanDirection },
    /// Custom Zoom: opens a pop-up for the zoom prompt.
    CustomZoom,
    /// Vary (Region): opens a pop-up for the mask and prompt.
    VaryRegion,
    /// Imagine one of describe's four prompts: opens a pop-up to edit it.
    PicReader { index: u8 },
    /// Describe the same image again.
    PicReaderRetry,
}

impl ButtonAction {
    /// The task action this button starts.
    pub fn task_action(&self) -> TaskAction {
        match self {
            Self::Upscale { .. } | Self::UpscaleAgain { .. } => TaskAction::Upscale,
            Self::Variation { .. } | Self::VarySubtle | Self::VaryStrong | Self::VaryRegion => {
                TaskAction::Variation
            }
            Self::Reroll => TaskAction::Reroll,
            Self::ZoomOut { .. } | Self::CustomZoom => TaskAction::Zoom,
            Self::Pan { .. } => TaskAction::Pan,
            Self::PicReader { .. } => TaskAction::Imagine,
            Self::PicReaderRetry => TaskAction::Describe,
        }
    }

    /// Buttons that open a Discord pop-up: the task starts in `MODAL` and waits for
    /// `/mj/submit/modal`.
    pub fn needs_modal(&self) -> bool {
        matches!(
            self,
            Self::CustomZoom | Self::VaryRegion | Self::PicReader { .. }
        )
    }
}

/// A parsed customId: what it does and the job hash it refers to (when the family has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomId {
    pub action: ButtonAction,
    pub hash: Option<String>,
}

impl CustomId {
    pub fn new(action: ButtonAction, hash: impl Into<String>) -> Self {
        Self {
            action,
            hash: Some(hash.into()),
        }
    }

    /// Parses a customId; the error says why it is not one we know.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let unknown = || format!("unknown customId `{}`", truncate(raw, 120));
        let parts: Vec<&str> = raw.split("::").collect();
        let with_hash = |action: ButtonAction, hash: &str| -> Result<Self, String> {
            if is_job_hash(hash) {
                Ok(Self::new(action, hash))
            } else {
                Err(format!(
                    "customId `{}` has a malformed job hash",
                    truncate(raw, 120)
                ))
            }
        };
        match parts.as_slice() {
            ["MJ", "JOB", "upsample", i, hash] => with_hash(
                ButtonAction::Upscale {
                    index: grid_index(i).ok_or_else(unknown)?,
                },
                hash,
            ),
            ["MJ", "JOB", "variation", i, hash] => with_hash(
                ButtonAction::Variation {
                    index: grid_index(i).ok_or_else(unknown)?,
                },
                hash,
            ),
            ["MJ", "JOB", "reroll", "0", hash, "SOLO"] => with_hash(ButtonAction::Reroll, hash),
            ["MJ", "JOB", "low_variation", "1", hash, "SOLO"] => {
                with_hash(ButtonAction::VarySubtle, hash)
            }
            ["MJ", "JOB", "high_variation", "1", hash, "SOLO"] => {
                with_hash(ButtonAction::VaryStrong, hash)
            }
            ["MJ", "JOB", job, "1", hash, "SOLO"] if job.starts_with("pan_") => {
                let direction = PanDirection::parse(&job[4..]).ok_or_else(unknown)?;
                with_hash(ButtonAction::Pan { direction }, hash)
            }
            ["MJ", "JOB", job, "1", hash, "SOLO"] if job.starts_with("upsample_v") => {
                let (version, creative) = parse_upscale_again(job).ok_or_else(unknown)?;
                with_hash(ButtonAction::UpscaleAgain { version, creative }, hash)
            }
            ["MJ", "Outpaint", percent @ ("50" | "75"), "1", hash, "SOLO"] => with_hash(
                ButtonAction::ZoomOut {
                    percent: percent.parse().map_err(|_| unknown())?,
                },
                hash,
            ),
            ["MJ", "CustomZoom", hash] => with_hash(ButtonAction::CustomZoom, hash),
            ["MJ", "Inpaint", "1", hash, "SOLO"] => with_hash(ButtonAction::VaryRegion, hash),
            ["MJ", "Job", "PicReader", i] => Ok(Self {
                action: ButtonAction::PicReader {
                    index: grid_index(i).ok_or_else(unknown)?,
                },
                hash: None,
            }),
            ["MJ", "Picread", "Retry"] => Ok(Self {
                action: ButtonAction::PicReaderRetry,
                hash: None,
            }),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for CustomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hash = self.hash.as_deref().unwrap_or_default();
        match &self.action {
            ButtonAction::Upscale { index } => write!(f, "MJ::JOB::upsample::{index}::{hash}"),
            ButtonAction::Variation { index } => write!(f, "MJ::JOB::variation::{index}::{hash}"),
            ButtonAction::Reroll => write!(f, "MJ::JOB::reroll::0::{hash}::SOLO"),
            ButtonAction::VarySubtle => write!(f, "MJ::JOB::low_variation::1::{hash}::SOLO"),
            ButtonAction::VaryStrong => write!(f, "MJ::JOB::high_variation::1::{hash}::SOLO"),
            ButtonAction::UpscaleAgain { version, creative } => {
                let kind = if *creative { "creative" } else { "subtle" };
                write!(f, "MJ::JOB::upsample_{version}_2x_{kind}::1::{hash}::SOLO")
            }
            ButtonAction::ZoomOut { percent } => {
                write!(f, "MJ::Outpaint::{percent}::1::{hash}::SOLO")
            }
            ButtonAction::Pan { direction } => {
                write!(f, "MJ::JOB::pan_{}::1::{hash}::SOLO", direction.as_str())
            }
            ButtonAction::CustomZoom => write!(f, "MJ::CustomZoom::{hash}"),
            ButtonAction::VaryRegion => write!(f, "MJ::Inpaint::1::{hash}::SOLO"),
            ButtonAction::PicReader { index } => write!(f, "MJ::Job::PicReader::{index}"),
            ButtonAction::PicReaderRetry => f.write_str("MJ::Picread::Retry"),
        }
    }
}

fn grid_index(s: &str) -> Option<u8> {
    match s {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        "4" => Some(4),
        _ => None,
    }
}

/// `upsample_v6_2x_subtle` → (`v6`, false).
fn parse_upscale_again(job: &str) -> Option<(String, bool)> {
    let rest = job.strip_prefix("upsample_")?;
    let (version, kind) = rest.split_once("_2x_")?;
    let digits = version.strip_prefix('v')?;
    let version_ok = !digits.is_empty()
        && digits.len() <= 4
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
    let creative = match kind {
        "subtle" => false,
        "creative" => true,
        _ => return None,
    };
    version_ok.then(|| (version.to_string(), creative))
}

/// Job hashes are UUIDs in practice; accept any short token of letters, digits, `-` and `_`.
fn is_job_hash(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "3f1c2a9e-7b4d-4c1e-9f0a-1b2c3d4e5f60";

    #[test]
    fn every_family_round_trips() {
        let ids = [
            format!("MJ::JOB::upsample::2::{HASH}"),
            format!("MJ::JOB::variation::4::{HASH}"),
            format!("MJ::JOB::reroll::0::{HASH}::SOLO"),
            format!("MJ::JOB::low_variation::1::{HASH}::SOLO"),
            format!("MJ::JOB::high_variation::1::{HASH}::SOLO"),
            format!("MJ::JOB::upsample_v6_2x_subtle::1::{HASH}::SOLO"),
            format!("MJ::JOB::upsample_v6.1_2x_creative::1::{HASH}::SOLO"),
            format!("MJ::Outpaint::50::1::{HASH}::SOLO"),
            format!("MJ::Outpaint::75::1::{HASH}::SOLO"),
            format!("MJ::JOB::pan_left::1::{HASH}::SOLO"),
            format!("MJ::JOB::pan_down::1::{HASH}::SOLO"),
            format!("MJ::CustomZoom::{HASH}"),
            format!("MJ::Inpaint::1::{HASH}::SOLO"),
            "MJ::Job::PicReader::3".to_string(),
            "MJ::Picread::Retry".to_string(),
        ];
        for id in ids {
            let parsed = CustomId::parse(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.to_string(), id);
        }
    }

    #[test]
    fn actions_and_pop_ups() {
        let upscale = CustomId::parse(&format!("MJ::JOB::upsample::1::{HASH}")).unwrap();
        assert_eq!(upscale.action.task_action(), TaskAction::Upscale);
        assert!(!upscale.action.needs_modal());
        let region = CustomId::parse(&format!("MJ::Inpaint::1::{HASH}::SOLO")).unwrap();
        assert_eq!(region.action.task_action(), TaskAction::Variation);
        assert!(region.action.needs_modal());
        let reader = CustomId::parse("MJ::Job::PicReader::1").unwrap();
        assert_eq!(reader.action.task_action(), TaskAction::Imagine);
        assert!(reader.action.needs_modal());
    }

    #[test]
    fn malformed_ids_are_errors_not_panics() {
        for bad in [
            "",
            "::",
            "MJ",
            "MJ::JOB::upsample::5::abc",
            "MJ::JOB::upsample::1::",
            "MJ::JOB::upsample::1::a b",
            "MJ::JOB::pan_diagonal::1::abc::SOLO",
            "MJ::Outpaint::60::1::abc::SOLO",
            "MJ::JOB::upsample_vX_2x_subtle::1::abc::SOLO",
            "MJ::BOOKMARK::abc",
            "MJ::Job::PicReader::0",
            "MJ::JOB::reroll::0::abc",
        ] {
            assert!(CustomId::parse(bad).is_err(), "{bad} should not parse");
        }
        let long = "MJ::".repeat(10_000);
        assert!(CustomId::parse(&long).is_err());
    }
}
