//! Configuration: a TOML file (`--config FILE`) overlaid by `MJGATE_*` environment variables.

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `mjgate serve` and the admin commands need to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on.
    pub listen: SocketAddr,
    /// `sqlite://FILE` (default `sqlite://<data_dir>/mjgate.db`) or `postgres://...`.
    pub database_url: Option<String>,
    /// Where the SQLite file and stored images live.
    pub data_dir: PathBuf,
    /// Absolute base of the URLs the gateway hands out; taken from the request when unset.
    /// Callbacks (which have no request) use it too, else the address the gateway listens on.
    pub public_url: Option<String>,
    /// How often unfinished tasks are polled upstream.
    #[serde(deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// An unfinished task older than this fails and is refunded.
    #[serde(deserialize_with = "duration")]
    pub task_timeout: Duration,
    /// How many polls in a row may miss a task before it is failed as forgotten.
    pub forget_after_polls: u32,
    /// Time limit for one request to an upstream.
    #[serde(deserialize_with = "duration")]
    pub upstream_timeout: Duration,
    /// Largest image the gateway fetches from an upstream, in bytes.
    pub max_image_bytes: u64,
    /// Secret for signing image URLs and channel callback URLs; generated and kept in the
    /// database when unset.
    pub secret: Option<String>,
    /// Failed submissions in a row that take a channel out of rotation.
    pub channel_failures_to_trip: u32,
    /// How long a failing channel rests before its next trial.
    #[serde(deserialize_with = "duration")]
    pub channel_cooldown: Duration,
    /// Requests one API key may make per minute, across all processes; 0: no limit.
    pub rate_limit_per_minute: u32,
    /// The `notifyHook` of tasks submitted without one.
    pub notify_hook: Option<String>,
    /// Whether hooks may point into private, loopback or link-local networks.
    pub allow_private_hooks: bool,
    /// How long a notification is retried before it is given up.
    #[serde(deserialize_with = "duration")]
    pub callback_max_age: Duration,
    /// Time limit for one attempt at a notification.
    #[serde(deserialize_with = "duration")]
    pub callback_timeout: Duration,
    /// Where copied images live: a local folder or an S3-compatible bucket.
    pub storage: StorageKind,
    /// The local image folder; `<data_dir>/images` when unset.
    pub storage_dir: Option<PathBuf>,
    pub s3_bucket: Option<String>,
    /// The S3 endpoint, for S3-compatible servers; AWS's when unset.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub s3_path_style: bool,
}

/// Where copied images are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Local,
    S3,
}

impl std::str::FromStr for StorageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(StorageKind::Local),
            "s3" => Ok(StorageKind::S3),
            other => Err(format!("`{other}` is not local or s3")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from("./data"),
            public_url: None,
            poll_interval: Duration::from_secs(3),
            task_timeout: Duration::from_secs(3600),
            forget_after_polls: 5,
            upstream_timeout: Duration::from_secs(30),
            max_image_bytes: 32 * 1024 * 1024,
            secret: None,
            channel_failures_to_trip: 3,
            channel_cooldown: Duration::from_secs(30),
            rate_limit_per_minute: 0,
            storage: StorageKind::Local,
            storage_dir: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1".to_string(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_path_style: false,
            notify_hook: None,
            allow_private_hooks: false,
            callback_max_age: Duration::from_secs(3600),
            callback_timeout: Duration::from_secs(10),
        }
    }
}

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{name}: {reason}")]
    Env { name: String, reason: String },
}

impl Config {
    /// Reads the file (when given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Overlays `MJGATE_<SETTING>` variables; other variables are ignored.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("MJGATE_") else {
                continue;
            };
            let bad = |reason: String| ConfigError::Env {
                name: name.clone(),
                reason,
            };
            match key {
                "LISTEN" => self.listen = value.parse().map_err(|e| bad(format!("{e}")))?,
                "DATABASE_URL" => self.database_url = Some(value),
                "DATA_DIR" => self.data_dir = PathBuf::from(value),
                "PUBLIC_URL" => self.public_url = Some(value),
                "POLL_INTERVAL" => self.poll_interval = parse_duration(&value).map_err(bad)?,
                "TASK_TIMEOUT" => self.task_timeout = parse_duration(&value).map_err(bad)?,
                "UPSTREAM_TIMEOUT" => {
                    self.upstream_timeout = parse_duration(&value).map_err(bad)?
                }
                "FORGET_AFTER_POLLS" => {
                    self.forget_after_polls = value.parse().map_err(|e| bad(format!("{e}")))?
                }
                "MAX_IMAGE_BYTES" => {
                    self.max_image_bytes = value.parse().map_err(|e| bad(format!("{e}")))?
                }
                "SECRET" => self.secret = Some(value),
                "CHANNEL_FAILURES_TO_TRIP" => {
                    self.channel_failures_to_trip =
                        value.parse().map_err(|e| bad(format!("{e}")))?
                }
                "CHANNEL_COOLDOWN" => {
                    self.channel_cooldown = parse_duration(&value).map_err(bad)?
                }
                "RATE_LIMIT_PER_MINUTE" => {
                    self.rate_limit_per_minute = value.parse().map_err(|e| bad(format!("{e}")))?
                }
                "STORAGE" => self.storage = value.parse().map_err(bad)?,
                "STORAGE_DIR" => self.storage_dir = Some(PathBuf::from(value)),
                "S3_BUCKET" => self.s3_bucket = Some(value),
                "S3_ENDPOINT" => self.s3_endpoint = Some(value),
                "S3_REGION" => self.s3_region = value,
                "S3_ACCESS_KEY_ID" => self.s3_access_key_id = Some(value),
                "S3_SECRET_ACCESS_KEY" => self.s3_secret_access_key = Some(value),
                "S3_PATH_STYLE" => {
                    self.s3_path_style = value.parse().map_err(|e| bad(format!("{e}")))?
                }
                "NOTIFY_HOOK" => self.notify_hook = Some(value).filter(|v| !v.is_empty()),
                "ALLOW_PRIVATE_HOOKS" => {
                    self.allow_private_hooks = parse_bool(&value).map_err(bad)?
                }
                "CALLBACK_MAX_AGE" => {
                    self.callback_max_age = parse_duration(&value).map_err(bad)?
                }
                "CALLBACK_TIMEOUT" => {
                    self.callback_timeout = parse_duration(&value).map_err(bad)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The local image folder.
    pub fn storage_dir(&self) -> PathBuf {
        self.storage_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("images"))
    }

    /// The database URL, defaulting to a SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mjgate.db").display()))
    }
}

/// `500ms`, `5s`, `1h`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}` is not a duration: {e}"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("`{text}` is not true or false")),
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file() {
        let mut config: Config =
            toml::from_str("poll_interval = \"5s\"\nlisten = \"0.0.0.0:9000\"").unwrap();
        assert_eq!(config.poll_interval, Duration::from_secs(5));
        config
            .apply_env([
                ("MJGATE_POLL_INTERVAL".to_string(), "500ms".to_string()),
                ("MJGATE_TASK_TIMEOUT".to_string(), "1h".to_string()),
                ("MJGATE_ALLOW_PRIVATE_HOOKS".to_string(), "true".to_string()),
                ("MJGATE_CALLBACK_MAX_AGE".to_string(), "10m".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ])
            .unwrap();
        assert_eq!(config.poll_interval, Duration::from_millis(500));
        assert_eq!(config.task_timeout, Duration::from_secs(3600));
        assert_eq!(config.listen.port(), 9000);
        assert!(config.allow_private_hooks);
        assert_eq!(config.callback_max_age, Duration::from_secs(600));
        assert_eq!(config.callback_timeout, Duration::from_secs(10));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::default()
            .apply_env([("MJGATE_POLL_INTERVAL".to_string(), "soon".to_string())])
            .unwrap_err();
        assert!(err.to_string().contains("MJGATE_POLL_INTERVAL"), "{err}");
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }

    #[test]
    fn sqlite_file_in_data_dir_by_default() {
        let config = Config {
            data_dir: PathBuf::from("/srv/mj"),
            ..Config::default()
        };
        assert_eq!(config.database_url(), "sqlite:///srv/mj/mjgate.db");
        assert_eq!(config.storage_dir(), PathBuf::from("/srv/mj/images"));
    }

    #[test]
    fn storage_settings() {
        let mut config: Config =
            toml::from_str("storage = \"s3\"\ns3_bucket = \"imgs\"\ns3_path_style = true").unwrap();
        assert_eq!(config.storage, StorageKind::S3);
        assert_eq!(config.s3_bucket.as_deref(), Some("imgs"));
        assert!(config.s3_path_style);
        config
            .apply_env([
                ("MJGATE_STORAGE".to_string(), "LOCAL".to_string()),
                ("MJGATE_S3_REGION".to_string(), "eu-west-1".to_string()),
            ])
            .unwrap();
        assert_eq!(config.storage, StorageKind::Local);
        assert_eq!(config.s3_region, "eu-west-1");
        assert!(
            Config::default()
                .apply_env([("MJGATE_STORAGE".to_string(), "ftp".to_string())])
                .is_err()
        );
    }
}
