//! Test harness: a real gateway on 127.0.0.1:0 with its own database (a temporary SQLite
//! file, or a fresh PostgreSQL schema), in front of real simulators.
#![allow(dead_code)]

pub mod files;
pub mod hooks;
pub mod sim_client;

use mjgate::admin;
use mjgate::sim::{SimConfig, Simulator};
use mjgate::store::{self, ChannelChange, NewChannel, Role, Store};
use mjgate::{App, AppState, Config};
use serde_json::Value;
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The variable that names the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "MJGATE_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `both_backends!(name, body_fn)` makes `name::sqlite`
/// and `name::postgres`; the PostgreSQL one is skipped with a notice when the variable is unset.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::common::postgres_url().is_none() {
                    eprintln!("skipped: set {} to run the PostgreSQL half", $crate::common::POSTGRES_ENV);
                    return;
                }
                super::$name($crate::common::Db::Postgres).await;
            }
        }
    )+};
}

pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())
}

/// Logs off by default; `MJGATE_TEST_LOG=debug` turns them on.
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("MJGATE_TEST_LOG") {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .init();
        }
    });
}

/// A database for one test; dropped with it.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn test_db(db: Db) -> TestDb {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("mjgate.db").display());
            TestDb {
                url,
                _dir: Some(dir),
            }
        }
        Db::Postgres => {
            let base = postgres_url().expect("checked by the caller");
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let pool = sqlx::PgPool::connect(&base).await.unwrap();
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            TestDb { url, _dir: None }
        }
    }
}

/// A running gateway with one user, one key, and simulators as channels.
pub struct Gateway {
    pub base: String,
    pub key: String,
    /// The key's notification signing secret.
    pub hook_secret: String,
    pub user_id: i64,
    /// The user's access token for the management API.
    pub access_token: String,
    pub state: AppState,
    pub sims: Vec<Simulator>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _db: TestDb,
    /// The gateway's data folder (its stored images).
    pub files: tempfile::TempDir,
}

/// Test-friendly gateway settings: fast polling, short grace.
pub fn fast_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        poll_interval: Duration::from_millis(50),
        forget_after_polls: 3,
        upstream_timeout: Duration::from_secs(5),
        // Test receivers listen on 127.0.0.1.
        allow_private_hooks: true,
        ..Config::default()
    }
}

impl Gateway {
    /// A gateway on `db` with one simulator per config, each added as a channel with its own
    /// secret (`secret-<n>`). Its data folder is a fresh temporary one.
    pub async fn start(db: Db, sims: Vec<SimConfig>, config: Config) -> Gateway {
        Self::start_with(db, sims, config, |_| {}).await
    }

    /// Like [`Gateway::start`], with `channel` changing each channel before it is created.
    pub async fn start_with(
        db: Db,
        sims: Vec<SimConfig>,
        mut config: Config,
        channel: impl Fn(&mut NewChannel),
    ) -> Gateway {
        init_logs();
        let files = tempfile::tempdir().unwrap();
        config.data_dir = files.path().to_path_buf();
        let db = test_db(db).await;
        let store: Arc<dyn Store> = store::open(&db.url).await.unwrap();
        let mut started = Vec::new();
        for (n, mut sim_config) in sims.into_iter().enumerate() {
            let secret = format!("secret-{n}");
            sim_config.secret = Some(secret.clone());
            let sim = Simulator::start(sim_config).await.unwrap();
            let mut new = NewChannel {
                name: format!("sim-{n}"),
                base_url: sim.base_url(),
                secret,
                is_local: true,
                ..NewChannel::default()
            };
            channel(&mut new);
            store.create_channel(&new).await.unwrap();
            started.push(sim);
        }
        let created = admin::create_user(&*store, "alice", Role::User)
            .await
            .unwrap();
        let user = created.user;
        let key = admin::create_key(&*store, &user, None, None).await.unwrap();
        let mut gateway = Gateway {
            base: String::new(),
            key: key.secret,
            hook_secret: key.hook_secret,
            user_id: user.id,
            access_token: created.access_token,
            state: AppState::with_store(config, store).await.unwrap(),
            sims: started,
            http: reqwest::Client::new(),
            stop: None,
            server: None,
            _db: db,
            files,
        };
        gateway.serve().await;
        gateway
    }

    /// Runs an app on the gateway's state (on a new port).
    async fn serve(&mut self) {
        let app = App::from_state(self.state.clone()).await.unwrap();
        self.base = format!("http://{}", app.local_addr());
        self.state = app.state().clone();
        let (stop, stopped) = oneshot::channel();
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(async move {
            app.run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }));
    }

    /// Stops the gateway (its workers too) and starts a new one on the same database, with
    /// a fresh store, the same channels, user and key, and `config`.
    pub async fn restart(mut self, mut config: Config) -> Gateway {
        config.data_dir = self.files.path().to_path_buf();
        self.stop_server().await;
        let store = store::open(&self._db.url).await.unwrap();
        self.state = AppState::with_store(config, store).await.unwrap();
        self.serve().await;
        self
    }

    async fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    /// GET on the management API as the user with this `(access token, user id)`.
    pub async fn manage_get(&self, (token, user_id): &(String, i64), path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("New-Api-User", user_id.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub fn store(&self) -> &dyn Store {
        &*self.state.store
    }

    /// The gateway's database, for a second gateway process on it.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    /// The id of the channel in front of simulator `n`.
    pub async fn channel_id(&self, n: usize) -> i64 {
        let name = format!("sim-{n}");
        let channels = self.store().list_channels().await.unwrap();
        channels.iter().find(|c| c.name == name).unwrap().id
    }

    /// Changes the settings of the channel in front of simulator `n`.
    pub async fn configure_channel(&self, n: usize, change: ChannelChange) {
        let id = self.channel_id(n).await;
        self.store()
            .update_channel(id, &change)
            .await
            .unwrap()
            .unwrap();
    }

    /// An admin's access token and id, for the management API.
    pub async fn admin(&self) -> (String, i64) {
        let created = admin::create_user(self.store(), "root", Role::Admin)
            .await
            .unwrap();
        (created.access_token, created.user.id)
    }

    /// A second user's key on the same gateway.
    pub async fn key_for(&self, user: &str) -> String {
        let user = admin::user_or_create(self.store(), user).await.unwrap();
        admin::create_key(self.store(), &user, None, None)
            .await
            .unwrap()
            .secret
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(&self.key, path, body).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(&self.key, path).await
    }

    pub async fn get_as(&self, key: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn fetch(&self, id: &str) -> Value {
        let (status, task) = self.get(&format!("/mj/task/{id}/fetch")).await;
        assert_eq!(status, 200, "{task}");
        task
    }

    /// Submits and returns the new task id, asserting the answer code.
    pub async fn submit(&self, path: &str, body: Value, code: i64) -> String {
        let (status, answer) = self.post(path, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["code"], code, "{answer}");
        answer["result"].as_str().unwrap().to_string()
    }

    /// Polls the task until `done` holds for it (bounded), returning every state seen.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        poll_states(id, || self.fetch(id), done).await
    }

    pub async fn wait_final(&self, id: &str) -> Value {
        let states = self
            .wait_for(id, |t| {
                matches!(t["status"].as_str(), Some("SUCCESS" | "FAILURE" | "CANCEL"))
            })
            .await;
        states.last().unwrap().clone()
    }

    /// Stops the gateway and waits for its workers to end.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
        for sim in self.sims.drain(..) {
            sim.stop().await;
        }
    }
}

/// The customId of the button labelled `label` (or, for a button without a label, showing
/// `label` as its emoji).
pub fn button(task: &Value, label: &str) -> String {
    task["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["label"] == label || (b["label"] == "" && b["emoji"] == label))
        .unwrap_or_else(|| panic!("no {label} button in {task}"))["customId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Fetches a task with `fetch` until `done` holds (bounded), returning every distinct state.
pub async fn poll_states<F, Fut>(id: &str, fetch: F, done: impl Fn(&Value) -> bool) -> Vec<Value>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let task = fetch().await;
        let finished = done(&task);
        if seen.last() != Some(&task) {
            seen.push(task);
        }
        if finished {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never reached the wanted state; last: {:?}",
            seen.last()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A PNG data URL of a small solid image.
pub fn png_data_url(rgb: [u8; 3]) -> String {
    let img = image::RgbImage::from_pixel(32, 32, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    mjgate::domain::data_url::encode("image/png", &out.into_inner())
}
