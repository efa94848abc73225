//! The command line as an operator uses it: admin commands on the configured database, and
//! `mjgate serve` configured by environment, answering, and stopping cleanly on SIGTERM.

use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mjgate(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjgate"));
    cmd.env("MJGATE_DATA_DIR", data_dir).env("RUST_LOG", "warn");
    cmd
}

fn json_output(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn admin_commands_share_the_configured_database() {
    let dir = tempfile::tempdir().unwrap();
    let key = json_output(mjgate(dir.path()).args(["key", "create", "--user", "zoe", "--json"]));
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("sk-") && secret.len() == 51, "{key}");
    assert!(key["id"].as_i64().is_some());
    let hook_secret = key["hook_secret"].as_str().unwrap();
    assert!(hook_secret.len() >= 32 && hook_secret != secret, "{key}");

    let channel = json_output(mjgate(dir.path()).args([
        "channel",
        "add",
        "--name",
        "up",
        "--base-url",
        "http://127.0.0.1:9",
        "--secret",
        "s",
        "--callbacks",
        "--json",
    ]));
    assert!(channel["id"].as_i64().is_some(), "{channel}");

    let keys = json_output(mjgate(dir.path()).args(["key", "list", "--json"]));
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert!(
        !keys.to_string().contains(secret) && !keys.to_string().contains(hook_secret),
        "lists never show secrets"
    );
    let channels = json_output(mjgate(dir.path()).args(["channel", "list", "--json"]));
    assert_eq!(channels[0]["name"], "up");
    assert_eq!(channels[0]["callbacks"], true);

    let updated = mjgate(dir.path())
        .args([
            "channel",
            "update",
            "--name",
            "up",
            "--weight",
            "5",
            "--modes",
            "fast, relax",
        ])
        .args(["--max-in-flight", "8", "--local", "--callbacks", "false"])
        .output()
        .unwrap();
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    let disabled = mjgate(dir.path())
        .args(["channel", "disable", "--name", "up"])
        .output()
        .unwrap();
    assert!(disabled.status.success());
    let channels = json_output(mjgate(dir.path()).args(["channel", "list", "--json"]));
    let up = &channels[0];
    assert_eq!(
        (
            &up["weight"],
            &up["modes"],
            &up["max_in_flight"],
            &up["is_local"],
            &up["enabled"],
            &up["callbacks"]
        ),
        (
            &json!(5),
            &json!("FAST,RELAX"),
            &json!(8),
            &json!(true),
            &json!(false),
            &json!(false)
        ),
        "{up}"
    );
    let unknown_mode = mjgate(dir.path())
        .args(["channel", "update", "--name", "up", "--modes", "warp"])
        .output()
        .unwrap();
    assert!(!unknown_mode.status.success());

    let bad = mjgate(dir.path())
        .args(["channel", "add", "--name", "x", "--base-url", "not a url"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn users_prices_and_the_ledger_check() {
    let dir = tempfile::tempdir().unwrap();
    let admin = json_output(mjgate(dir.path()).args([
        "user", "create", "--name", "root", "--admin", "--quota", "1000", "--json",
    ]));
    assert_eq!(admin["name"], "root");
    assert_eq!(admin["access_token"].as_str().unwrap().len(), 32);
    let topped = json_output(mjgate(dir.path()).args([
        "user", "topup", "--name", "root", "--amount", "500", "--json",
    ]));
    assert_eq!(topped["balance"], 1500);
    let users = json_output(mjgate(dir.path()).args(["user", "list", "--json"]));
    assert_eq!(users[0]["role"], "admin");

    let key = json_output(mjgate(dir.path()).args([
        "key",
        "create",
        "--user",
        "root",
        "--limit",
        "100",
        "--expires",
        "2099-01-01",
        "--json",
    ]));
    let keys = json_output(mjgate(dir.path()).args(["key", "list", "--json"]));
    assert_eq!(keys[0]["id"], key["id"]);
    assert_eq!(keys[0]["quota_limit"], 100);
    assert_eq!(keys[0]["expires_at"], 4_070_908_800_000i64);
    let id = key["id"].to_string();
    assert!(
        mjgate(dir.path())
            .args(["key", "disable", "--id", &id])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        json_output(mjgate(dir.path()).args(["key", "list", "--json"]))[0]["enabled"],
        false
    );

    assert!(
        mjgate(dir.path())
            .args([
                "price", "set", "--action", "imagine", "--mode", "turbo", "--price", "90000"
            ])
            .status()
            .unwrap()
            .success()
    );
    let prices = json_output(mjgate(dir.path()).args(["price", "list", "--json"]));
    let turbo = prices
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["action"] == "IMAGINE" && p["mode"] == "TURBO")
        .unwrap();
    assert_eq!(turbo["price"], 90000);
    let fast = prices
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["action"] == "IMAGINE" && p["mode"] == "FAST")
        .unwrap();
    assert_eq!(fast["price"], 50000);
    let refused = mjgate(dir.path())
        .args(["price", "set", "--action", "FLY", "--price", "1"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("FLY"));

    let check = mjgate(dir.path())
        .args(["ledger", "check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(
        mjgate(dir.path())
            .args(["user", "disable", "--name", "root"])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn serve_reads_the_environment_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("mjgate.toml");
    std::fs::write(
        &config,
        "poll_interval = \"200ms\"\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let mut child = mjgate(dir.path())
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("MJGATE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let attempt = raw_http::get_status(&format!("http://127.0.0.1:{port}/mj/task/list"));
        if let Some(answer) = attempt {
            break answer;
        }
        assert!(Instant::now() < deadline, "mjgate serve never answered");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(answer, 401, "the task list needs a key");
    assert!(dir.path().join("mjgate.db").exists());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "mjgate serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// A tiny blocking GET that returns the status, or None when nothing listens yet.
mod raw_http {
    use std::io::{Read, Write};

    pub fn get_status(url: &str) -> Option<u16> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
        let mut stream = std::net::TcpStream::connect(host).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }
}

/// The README's first command: the demo prints a key that works at once, through imagine
/// and an upscale, against its built-in simulator.
#[tokio::test]
async fn demo_prints_a_key_that_works() {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mjgate"))
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--sim-step",
            "5ms",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let key = lines
        .find_map(|line| {
            let rest = line.strip_prefix("demo API key: ")?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .expect("the demo prints its key");
    // Keep reading, so that the demo's further output never meets a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let answer: Value = post(
        "/mj/submit/imagine",
        serde_json::json!({"prompt": "a lighthouse"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["code"], 1, "{answer}");
    let id = answer["result"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let task: Value = loop {
        let task: Value = http
            .get(format!("{base}/mj/task/{id}/fetch"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if task["status"] == "SUCCESS" {
            break task;
        }
        assert!(
            Instant::now() < deadline,
            "the demo task never finished: {task}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let u1 = task["buttons"][0]["customId"].clone();
    let answer: Value = post(
        "/mj/submit/action",
        serde_json::json!({"taskId": id, "customId": u1}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["code"], 1, "{answer}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
