//! Three `mjgate serve` processes on one PostgreSQL database in front of three simulators:
//! thousands of tasks through all of them, one killed with SIGKILL in the middle, and every
//! task still ends, every refund happens once, every callback state is delivered, nothing
//! reaches an upstream twice, and no task is polled by two processes at once. Skipped
//! without PostgreSQL.

mod common;

use common::hooks::HookReceiver;
use common::{Db, postgres_url, test_db};
use futures_util::StreamExt;
use mjgate::admin;
use mjgate::sim::{Pace, SimConfig, Simulator};
use mjgate::store::{self, NewChannel, Role, TaskFilter};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TASKS: usize = 2000;
const IN_FLIGHT: usize = 24;
/// One task in this many asks for callbacks.
const HOOKED_EVERY: usize = 4;

struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_gateway(database_url: &str, data_dir: &std::path::Path) -> Gateway {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_mjgate"))
        .arg("serve")
        .env("MJGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("MJGATE_DATABASE_URL", database_url)
        .env("MJGATE_DATA_DIR", data_dir)
        .env("MJGATE_POLL_INTERVAL", "200ms")
        .env("MJGATE_UPSTREAM_TIMEOUT", "10s")
        // The test's callback receiver listens on 127.0.0.1.
        .env("MJGATE_ALLOW_PRIVATE_HOOKS", "true")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_work_and_survive_a_kill() {
    if postgres_url().is_none() {
        eprintln!(
            "skipped: set {} to run the multi-process test",
            common::POSTGRES_ENV
        );
        return;
    }
    let db = test_db(Db::Postgres).await;
    let store = store::open(&db.url).await.unwrap();
    let mut sims = Vec::new();
    for n in 0..3 {
        let sim = Simulator::start(SimConfig {
            secret: Some(format!("secret-{n}")),
            pace: Pace::Step(Duration::from_millis(20)),
            concurrency: 300,
            queue_size: 5000,
            image_size: 64,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        store
            .create_channel(&NewChannel {
                name: format!("sim-{n}"),
                base_url: sim.base_url(),
                secret: format!("secret-{n}"),
                is_local: true,
                ..NewChannel::default()
            })
            .await
            .unwrap();
        sims.push(sim);
    }
    let user = admin::create_user(&*store, "alice", Role::User)
        .await
        .unwrap()
        .user;
    store
        .top_up(user.id, 10 * TASKS as i64 * 50_000)
        .await
        .unwrap();
    let key = admin::create_key(&*store, &user, None, None)
        .await
        .unwrap()
        .secret;

    let hook = HookReceiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut gateways: Vec<Option<Gateway>> = (0..3)
        .map(|_| Some(spawn_gateway(&db.url, data.path())))
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for gw in gateways.iter().flatten() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http
            .get(format!("{}/readyz", gw.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        {
            assert!(Instant::now() < deadline, "{} never became ready", gw.base);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let bases: Vec<String> = gateways.iter().flatten().map(|g| g.base.clone()).collect();

    // A load balancer: round robin over the processes, skipping one that refuses connections.
    let started = Instant::now();
    let killed = std::sync::atomic::AtomicBool::new(false);
    let answers: Vec<(usize, Result<Value, String>)> = futures_util::stream::iter(0..TASKS)
        .map(|n| {
            let (http, key, bases, killed) = (&http, &key, &bases, &killed);
            let mut body = json!({"prompt": format!("task {n}")});
            if n % HOOKED_EVERY == 0 {
                body["notifyHook"] = json!(hook.url);
            }
            async move {
                let mut target = n % 3;
                loop {
                    let sent = http
                        .post(format!("{}/mj/submit/imagine", bases[target]))
                        .bearer_auth(key)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            return (n, response.json::<Value>().await.map_err(|e| e.to_string()));
                        }
                        // Never arrived: another process may take it.
                        Err(e)
                            if e.is_connect()
                                && killed.load(std::sync::atomic::Ordering::SeqCst) =>
                        {
                            target = (target + 1) % 3;
                        }
                        // It may have arrived: the client cannot know, as with a real balancer.
                        Err(e) => return (n, Err(e.to_string())),
                    }
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .inspect(|(n, _)| {
            if *n == TASKS / 2 && !killed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let victim = gateways[1].as_mut().unwrap();
                victim.child.kill().unwrap();
                victim.child.wait().unwrap();
            }
        })
        .collect()
        .await;
    let submit_time = started.elapsed();
    gateways[1] = None;
    let accepted: HashSet<String> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok())
        .filter(|a| matches!(a["code"].as_i64(), Some(1 | 22)))
        .map(|a| a["result"].as_str().unwrap().to_string())
        .collect();
    let hooked: Vec<String> = answers
        .iter()
        .filter(|(n, _)| n % HOOKED_EVERY == 0)
        .filter_map(|(_, a)| a.as_ref().ok())
        .filter_map(|a| a["result"].as_str().map(str::to_string))
        .collect();
    let unanswered = answers.iter().filter(|(_, a)| a.is_err()).count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok())
        .filter(|a| !matches!(a["code"].as_i64(), Some(1 | 22)))
        .collect();
    assert!(
        refused.is_empty(),
        "{} refused, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
    assert!(
        accepted.len() + unanswered >= TASKS && unanswered <= IN_FLIGHT,
        "{unanswered} unanswered"
    );

    // Every task ends, accepted ones successfully.
    let deadline = Instant::now() + Duration::from_secs(180);
    let tasks = loop {
        let filter = TaskFilter {
            limit: 10_000,
            ..TaskFilter::default()
        };
        let (tasks, _) = store.list_tasks(&filter).await.unwrap();
        if tasks.iter().all(|t| t.status.is_final()) {
            break tasks;
        }
        assert!(Instant::now() < deadline, "tasks never all ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let finish_time = started.elapsed();
    for task in &tasks {
        if accepted.contains(&task.mj_id) {
            assert_eq!(
                task.status.as_str(),
                "SUCCESS",
                "{} {:?}",
                task.mj_id,
                task.fail_reason
            );
        }
    }
    let problems = store.ledger_check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");

    // Every callback state of every hooked task was delivered, in order.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut deliveries = 0;
    for id in &hooked {
        let states = loop {
            let states = store.task_deliveries(id).await.unwrap();
            if states.iter().all(|(d, _)| d.state.as_str() == "delivered") {
                break states;
            }
            assert!(
                Instant::now() < deadline,
                "the callbacks of {id} were never all delivered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(states.last().unwrap().0.status.as_str(), "SUCCESS", "{id}");
        deliveries += states.len();
    }
    let calls = hook.calls();
    let mut seen_by_task: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for call in calls.iter().filter(|c| c.accepted()) {
        let progress = call.body["progress"]
            .as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        seen_by_task
            .entry(call.body["id"].as_str().unwrap().to_string())
            .or_default()
            .push((call.body["status"].as_str().unwrap().to_string(), progress));
    }
    for id in &hooked {
        let seen = &seen_by_task[id];
        assert!(
            seen.windows(2).all(|w| w[0].1 <= w[1].1),
            "{id} heard out of order: {seen:?}"
        );
        assert_eq!(seen.last().unwrap().0, "SUCCESS");
    }
    let deliver_time = started.elapsed();

    // Nothing reached an upstream twice: every prompt was submitted at most once.
    let mut seen = HashSet::new();
    let mut polls_by_instance: HashMap<String, usize> = HashMap::new();
    for sim in &sims {
        let requests = sim.requests();
        for r in requests
            .iter()
            .filter(|r| r.path.ends_with("/submit/imagine"))
        {
            let prompt = r.body.as_ref().unwrap()["prompt"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(seen.insert(prompt.clone()), "{prompt} was submitted twice");
        }
        // No task was in two overlapping polls from different processes.
        let polls: Vec<_> = requests
            .iter()
            .filter(|r| r.path.ends_with("/list-by-condition"))
            .collect();
        for p in &polls {
            *polls_by_instance
                .entry(p.user_agent.clone().unwrap_or_default())
                .or_default() += 1;
        }
        for (i, a) in polls.iter().enumerate() {
            for b in &polls[i + 1..] {
                let overlap = a.at_ms < b.done_ms && b.at_ms < a.done_ms;
                if overlap && a.user_agent != b.user_agent {
                    let ids = |r: &&mjgate::sim::RequestRecord| -> HashSet<String> {
                        r.body.as_ref().unwrap()["ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_str().unwrap().to_string())
                            .collect()
                    };
                    assert!(
                        ids(a).is_disjoint(&ids(b)),
                        "two processes polled the same task at once"
                    );
                }
            }
        }
    }
    assert!(
        polls_by_instance.len() >= 2,
        "polling was shared: {polls_by_instance:?}"
    );
    let successes = tasks
        .iter()
        .filter(|t| t.status.as_str() == "SUCCESS")
        .count();
    println!(
        "multi-process: {TASKS} submissions ({} accepted, {unanswered} unanswered at the kill) in {:.1}s; \
         {} tasks, {successes} succeeded, all final after {:.1}s; {deliveries} callbacks of {} hooked \
         tasks delivered ({} calls received) after {:.1}s; polls per process {polls_by_instance:?}",
        accepted.len(),
        submit_time.as_secs_f64(),
        tasks.len(),
        finish_time.as_secs_f64(),
        hooked.len(),
        calls.len(),
        deliver_time.as_secs_f64(),
    );
    drop(gateways);
    for sim in sims {
        sim.stop().await;
    }
}
