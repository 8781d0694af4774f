//! `flagbridge serve` (the binary) stopped with SIGTERM while logx is slower than the shutdown
//! budget, then started again on the same state_dir: every impression it answered is
//! delivered, those left at shutdown by the second process, and the log says how many were left.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flagbridge_sync::testing::{datafile, FakeCdn, FakeEventEndpoint};
use serde_json::json;

const KEY: &str = "SigtermKey";
const REQUESTS: usize = 300;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(config: &std::path::Path, port: u16, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn metric(http: &reqwest::Client, base: &str, name: &str) -> Option<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_slow_logx_then_restart_delivers_every_answered_impression() {
    let cdn = FakeCdn::start().await.unwrap();
    cdn.set_datafile(KEY, datafile("1"));
    let events = FakeEventEndpoint::start().await.unwrap();
    // Slower than the shutdown budget: nothing is answered before the process ends.
    events.set_latency(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flagbridge.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
state_dir: {state}
server:
  shutdown_timeout_secs: 1
connectors:
  optimizely:
    sdk_key: {KEY}
    datafile: {{poll_interval_secs: 3600}}
    urls:
      cdn: {cdn}
      events: {events}
"#,
            state = dir.path().join("state").display(),
            cdn = cdn.base_url(),
            events = events.url(),
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let first_log = dir.path().join("first.log");
    let mut first = spawn(&config, port, &first_log);
    wait_for("the first process to serve", async || {
        http.get(format!("{base}/health")).send().await.is_ok()
    })
    .await;
    for i in 0..REQUESTS {
        let resp = http
            .post(format!("{base}/v1/decide?keys=checkout"))
            .header("X-Optimizely-SDK-Key", KEY)
            .json(&json!({"userId": format!("user-{i}"), "userAttributes": {"plan": "pro"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Every answered impression is accepted before the signal.
    wait_for("the impressions to be accepted", async || {
        metric(&http, &base, "flagbridge_events_queued_total").await == Some(REQUESTS as u64)
    })
    .await;
    let pid = first.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    let log = std::fs::read_to_string(&first_log).unwrap();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        log.contains("they stay in the store and are sent at the next start"),
        "{log}"
    );
    let delivered_before = events.distinct_uuids().len();

    events.set_latency(Duration::ZERO);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = spawn(&config, port, &dir.path().join("second.log"));
    wait_for("the second process to deliver what was left", async || {
        metric(&http, &base, "flagbridge_events_in_store").await == Some(0)
            && events.distinct_uuids().len() >= REQUESTS
    })
    .await;
    let _ = second.kill();
    let _ = second.wait();
    println!(
        "SIGTERM with logx 5 s away: {delivered_before} delivered by the first process, {} in all after the restart ({} requests)",
        events.distinct_uuids().len(),
        events.requests()
    );
    assert_eq!(events.distinct_uuids().len(), REQUESTS);
}
