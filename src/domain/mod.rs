//! The domain: plain types for tasks, actions, customIds, ids and keys. No I/O here.

pub mod custom_id;
pub mod data_url;
pub mod ids;
pub mod prices;
pub mod secrets;
pub mod task;

pub use custom_id::{ButtonAction, CustomId, PanDirection};
pub use task::{BotType, Button, Dimensions, Mode, TaskAction, TaskStatus};
