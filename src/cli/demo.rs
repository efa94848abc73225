//! `mjgate demo`: the gateway, a built-in simulator as its one channel, a fresh database in
//! a temporary folder, and a demo key, so that the README's curl lines work at once.

use crate::admin;
use crate::app::{App, shutdown_signal};
use crate::config::{Config, parse_duration};
use crate::sim::{Pace, SimConfig, Simulator};
use crate::store::NewChannel;
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// The demo user's starting balance: 100 USD, a thousand imagines.
const DEMO_QUOTA: i64 = 50_000_000;

#[derive(Args)]
pub struct DemoArgs {
    /// Address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Time between two progress steps of a simulated task.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    sim_step: Duration,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data = tempfile::Builder::new().prefix("mjgate-demo-").tempdir()?;
    let sim_secret = crate::domain::secrets::new_signing_secret();
    let sim = Simulator::start(SimConfig {
        secret: Some(sim_secret.clone()),
        pace: Pace::Step(args.sim_step),
        ..SimConfig::default()
    })
    .await?;

    let config = Config {
        listen: args.listen,
        data_dir: data.path().to_path_buf(),
        poll_interval: Duration::from_millis(500),
        ..Config::default()
    };
    let app = App::build(config).await?;
    let store = app.state().store.clone();
    store
        .create_channel(&NewChannel {
            name: "simulator".to_string(),
            base_url: sim.base_url(),
            secret: sim_secret,
            is_local: true,
            callbacks: true,
            ..NewChannel::default()
        })
        .await?;
    let user = admin::user_or_create(&*store, "demo").await?;
    let user = store.top_up(user.id, DEMO_QUOTA).await?;
    let key = admin::create_key(&*store, &user, None, None).await?;

    let base = format!("http://{}", app.local_addr());
    let banner = format!(
        "\nmjgate demo is running on {base} (simulated upstream on {})\n\
         demo API key: {key} (user `demo`, balance {balance} units)\n\n\
         Try:\n  \
         curl -s {base}/mj/submit/imagine -H 'Authorization: Bearer {key}' \\\n    \
         -H 'Content-Type: application/json' -d '{{\"prompt\": \"a lighthouse at dusk\"}}'\n  \
         curl -s {base}/mj/task/<id from above>/fetch -H 'Authorization: Bearer {key}'\n\n\
         Data lives in {} until the demo stops (Ctrl-C).\n",
        sim.base_url(),
        data.path().display(),
        key = key.secret,
        balance = user.balance,
    );
    // One write, and a reader that went away (a script that took the key) is no reason to
    // stop: `println!` would write line by line and panic on a closed pipe.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), banner.as_bytes());
    app.run(shutdown_signal()).await?;
    sim.stop().await;
    Ok(())
}
