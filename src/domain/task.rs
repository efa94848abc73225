//! Task vocabulary shared by the gateway and the simulator: statuses, actions, bot types,
//! speed modes and buttons, spelled exactly as the midjourney-proxy protocol spells them.

use serde::{Deserialize, Serialize};

/// Generates `as_str`, `Display`, `FromStr` and serde for a closed set of protocol words
/// (also the store's words for roles and job states).
macro_rules! protocol_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in protocol order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The protocol spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{}`", stringify!($name), other)),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use protocol_enum;

protocol_enum!(
    /// Where a task is in its life.
    TaskStatus {
        NotStart => "NOT_START",
        Submitted => "SUBMITTED",
        Modal => "MODAL",
        InProgress => "IN_PROGRESS",
        Failure => "FAILURE",
        Success => "SUCCESS",
        Cancel => "CANCEL",
    }
);

impl TaskStatus {
    /// A final status never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Failure | TaskStatus::Success | TaskStatus::Cancel
        )
    }
}

protocol_enum!(
    /// What a task does.
    TaskAction {
        Imagine => "IMAGINE",
        Upscale => "UPSCALE",
        Variation => "VARIATION",
        Reroll => "REROLL",
        Zoom => "ZOOM",
        Pan => "PAN",
        Describe => "DESCRIBE",
        Blend => "BLEND",
        Shorten => "SHORTEN",
        SwapFace => "SWAP_FACE",
        Upload => "UPLOAD",
    }
);

protocol_enum!(
    /// Which Discord bot runs the task.
    #[derive(Default)]
    BotType {
        #[default]
        MidJourney => "MID_JOURNEY",
        NijiJourney => "NIJI_JOURNEY",
    }
);

protocol_enum!(
    /// Speed mode of a Midjourney account.
    Mode {
        Fast => "FAST",
        Relax => "RELAX",
        Turbo => "TURBO",
    }
);

impl Mode {
    /// The route prefix that selects this mode (`/mj-fast/mj/...`).
    pub fn path_prefix(self) -> &'static str {
        match self {
            Mode::Fast => "/mj-fast",
            Mode::Relax => "/mj-relax",
            Mode::Turbo => "/mj-turbo",
        }
    }
}

protocol_enum!(
    /// Aspect of a blend.
    #[derive(Default)]
    Dimensions {
        Portrait => "PORTRAIT",
        #[default]
        Square => "SQUARE",
        Landscape => "LANDSCAPE",
    }
);

impl Dimensions {
    /// Width and height for a canvas whose longer side is `long`.
    pub fn canvas(self, long: u32) -> (u32, u32) {
        match self {
            Dimensions::Portrait => (long * 2 / 3, long),
            Dimensions::Square => (long, long),
            Dimensions::Landscape => (long, long * 2 / 3),
        }
    }
}

/// A Discord message button, as midjourney-proxy reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Button {
    pub custom_id: String,
    #[serde(default)]
    pub emoji: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub style: i32,
    #[serde(rename = "type", default)]
    pub kind: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_words_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
        }
        assert_eq!(
            serde_json::to_string(&TaskAction::SwapFace).unwrap(),
            "\"SWAP_FACE\""
        );
        assert!("fast".parse::<Mode>().is_err());
    }

    #[test]
    fn final_statuses() {
        assert!(TaskStatus::Success.is_final());
        assert!(!TaskStatus::Modal.is_final());
    }
}
