//! Three `flagbridge serve` processes sharing one `redis-server` (the `store:` section), with
//! the in-process CDN, logx and Brevo fakes: the newest decision wins whichever instance made
//! it, the Brevo budget holds for the fleet, an instance killed mid-flush loses nothing, and
//! Redis restarting or going away for 10 s loses nothing either.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flagbridge_sync::connector::serve::webhook;
use flagbridge_sync::testing::fake_brevo::{FakeBrevo, API_KEY};
use flagbridge_sync::testing::{datafile, FakeCdn, FakeEventEndpoint, RedisServer};
use serde_json::json;

const KEY: &str = "FleetKey";
const WEBHOOK_SECRET: &str = "whsec-fleet";
/// Brevo's limit per second in the fake, and the fleet's budget.
const BREVO_LIMIT: u32 = 10;
const BUDGET: u32 = 8;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Fakes {
    cdn: FakeCdn,
    events: FakeEventEndpoint,
    brevo: FakeBrevo,
}

async fn fakes() -> Fakes {
    let cdn = FakeCdn::start().await.unwrap();
    cdn.set_datafile(KEY, datafile("1"));
    Fakes {
        cdn,
        events: FakeEventEndpoint::start().await.unwrap(),
        brevo: FakeBrevo::start(BREVO_LIMIT).await,
    }
}

/// One instance: its own state_dir and config, the shared Redis.
struct Instance {
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Instance {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start(dir: &Path, name: &str, fakes: &Fakes, redis: &RedisServer, lease_secs: u64) -> Instance {
    let state = dir.join(name);
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            r#"
state_dir: {state}
store:
  url: {redis}
  key_prefix: "fleet:"
  lease_timeout_secs: {lease_secs}
server:
  shutdown_timeout_secs: 2
connectors:
  optimizely:
    sdk_key: {KEY}
    project_id: 13001
    webhook_secret: {WEBHOOK_SECRET}
    datafile: {{poll_interval_secs: 3600}}
    urls:
      cdn: {cdn}
      events: {events}
  brevo:
    api_key: {API_KEY}
    base_url: {brevo}
    rate_limit: {{per_second: {BUDGET}, per_hour: 1000000}}
    batch_size: 100
"#,
            state = state.display(),
            redis = redis.url(),
            cdn = fakes.cdn.base_url(),
            events = fakes.events.url(),
            brevo = fakes.brevo.url(),
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Instance {
        child: Some(child),
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(http: &reqwest::Client, instances: &[&Instance]) {
    for i in instances {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{}/health", i.base)).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "an instance did not serve:\n{}",
                i.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
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

fn email(i: usize) -> String {
    format!("c{i}@x.io")
}

/// Decides `checkout` for contact `i` on `base` with `plan` (pro: the experiment's treatment;
/// otherwise the rollout, which takes the contact out of EXPERIMENT_VARIATION).
async fn decide(http: &reqwest::Client, base: &str, i: usize, pro: bool) -> u16 {
    let plan = if pro { "pro" } else { "free" };
    match http
        .post(format!("{base}/v1/decide?keys=checkout"))
        .header("X-Optimizely-SDK-Key", KEY)
        .json(&json!({"userId": format!("u{i}"), "userAttributes": {"email": email(i), "plan": plan}}))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Decides every `(contact, instance, pro)` with 8 requests at a time; returns the statuses
/// that were not 200.
async fn decide_all(
    http: &reqwest::Client,
    bases: &[String],
    work: Vec<(usize, usize, bool)>,
) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in work.chunks(work.len().div_ceil(8).max(1)) {
        let chunk = chunk.to_vec();
        let http = http.clone();
        let bases = bases.to_vec();
        tasks.spawn(async move {
            let mut bad = Vec::new();
            for (i, instance, pro) in chunk {
                let status = decide(&http, &bases[instance], i, pro).await;
                if status != 200 {
                    bad.push(status);
                }
            }
            bad
        });
    }
    let mut bad = Vec::new();
    while let Some(r) = tasks.join_next().await {
        bad.extend(r.unwrap());
    }
    bad
}

/// Contacts of `0..n` whose EXPERIMENT_VARIATION does not say what `pro(i)` (the newest
/// decision) says.
fn wrong(brevo: &FakeBrevo, n: usize, pro: impl Fn(usize) -> bool) -> Vec<usize> {
    (0..n)
        .filter(|&i| {
            let Some(c) = brevo.contact(&email(i)) else {
                return true;
            };
            match c
                .attributes
                .get("EXPERIMENT_VARIATION")
                .and_then(|v| v.as_str())
            {
                Some(v) => v.contains("treatment") != pro(i),
                None => true,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_contacts_across_three_instances_end_with_the_newest_state() {
    let redis = RedisServer::start_with(true).unwrap();
    let fakes = fakes().await;
    let n = 3_000;
    fakes.brevo.add_contacts(
        (0..n)
            .map(email)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let instances: Vec<Instance> = (0..3)
        .map(|k| start(dir.path(), &format!("i{k}"), &fakes, &redis, 10))
        .collect();
    ready(&http, &instances.iter().collect::<Vec<_>>()).await;
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    // Round 1 on instance i % 3, round 2 (later) on instance (i + 1) % 3 with the other plan.
    let round1 = (0..n).map(|i| (i, i % 3, i % 2 == 0)).collect();
    assert!(decide_all(&http, &bases, round1).await.is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let round2 = (0..n).map(|i| (i, (i + 1) % 3, i % 2 == 1)).collect();
    assert!(decide_all(&http, &bases, round2).await.is_empty());
    wait_for(
        "every contact's newest state in Brevo",
        Duration::from_secs(120),
        async || wrong(&fakes.brevo, n, |i| i % 2 == 1).is_empty(),
    )
    .await;
    let most = fakes.brevo.max_in_any_second("contacts");
    let requests = fakes.brevo.with(|s| s.requests.len());
    println!("3,000 contacts x 2 decisions on three instances: {requests} Brevo requests, at most {most} in one second (budget {BUDGET})");
    assert!(
        most <= BUDGET as usize,
        "{most} Brevo requests within one second"
    );
    assert_eq!(fakes.brevo.with(|s| s.throttled), 0);
    // Nothing is left anywhere.
    for b in &bases {
        wait_for(
            "the local backlog to empty",
            Duration::from_secs(30),
            async || metric(&http, b, "flagbridge_store_local_backlog").await == Some(0),
        )
        .await;
        assert_eq!(metric(&http, b, "flagbridge_store_redis_up").await, Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_flush_the_others_deliver_its_claimed_contacts_after_the_lease() {
    let redis = RedisServer::start_with(true).unwrap();
    let fakes = fakes().await;
    let n = 300;
    fakes.brevo.add_contacts(
        (0..n)
            .map(email)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut victim = start(dir.path(), "victim", &fakes, &redis, 2);
    ready(&http, &[&victim]).await;
    // Every contact write hangs while the victim lives: it holds its claimed entries when
    // killed (what it is handed during the hang it still publishes, every flush interval).
    fakes.brevo.with(|s| {
        s.slow_next = u32::MAX;
        s.slow_for = Duration::from_secs(60);
    });
    let bases = vec![victim.base.clone()];
    assert!(
        decide_all(&http, &bases, (0..n).map(|i| (i, 0, true)).collect())
            .await
            .is_empty()
    );
    wait_for(
        "the victim's first batch write",
        Duration::from_secs(30),
        async || fakes.brevo.count_requests("POST", "/contacts/batch") >= 1,
    )
    .await;
    victim.kill();
    fakes.brevo.with(|s| s.slow_next = 0);
    // What the victim handed to the fleet: the stream's contacts, its claimed ones among them.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg("fleet:brevo:contacts")
        .arg("flagbridge")
        .query_async(&mut conn)
        .await
        .unwrap();
    let claimed = match &pending {
        redis::Value::Array(parts) => match parts.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    };
    assert!(
        claimed >= 1,
        "the victim held no claimed entry: {pending:?}"
    );
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("fleet:brevo:contacts")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let handed: Vec<usize> = entries
        .iter()
        .filter_map(|(_, fields)| fields.get("c"))
        .filter_map(|c| c.strip_prefix('c')?.strip_suffix("@x.io")?.parse().ok())
        .collect();
    assert!(handed.len() as i64 >= claimed);
    let others: Vec<Instance> = (0..2)
        .map(|k| start(dir.path(), &format!("o{k}"), &fakes, &redis, 2))
        .collect();
    ready(&http, &others.iter().collect::<Vec<_>>()).await;
    wait_for(
        "every contact the victim handed over in Brevo",
        Duration::from_secs(60),
        async || {
            let missing = wrong(&fakes.brevo, n, |_| true);
            handed.iter().all(|i| !missing.contains(i))
        },
    )
    .await;
    println!(
        "kill -9: {claimed} claimed and {} handed over by the victim, all delivered by the others",
        handed.len()
    );
    let logs: String = others.iter().map(Instance::log).collect();
    assert!(
        logs.contains("taking over contact writes claimed by an instance that stopped answering"),
        "no take-over in the logs:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_or_down_for_10_s_every_decide_answered_nothing_lost() {
    let mut redis = RedisServer::start_with(true).unwrap();
    let fakes = fakes().await;
    let n = 600;
    fakes.brevo.add_contacts(
        (0..n)
            .map(email)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let instances: Vec<Instance> = (0..3)
        .map(|k| start(dir.path(), &format!("i{k}"), &fakes, &redis, 5))
        .collect();
    ready(&http, &instances.iter().collect::<Vec<_>>()).await;
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    // Half the contacts, then Redis restarts (AOF on), then the other half.
    let first = (0..n / 2).map(|i| (i, i % 3, true)).collect();
    assert!(decide_all(&http, &bases, first).await.is_empty());
    redis.restart().unwrap();
    let second = (n / 2..n).map(|i| (i, i % 3, true)).collect();
    assert!(decide_all(&http, &bases, second).await.is_empty());
    wait_for(
        "every contact in Brevo after the restart",
        Duration::from_secs(60),
        async || wrong(&fakes.brevo, n, |_| true).is_empty(),
    )
    .await;
    // Redis down for 10 s: every contact decided again with the other plan; every decide
    // answered; the health page says degraded and the backlog waits locally.
    redis.stop();
    let down_at = Instant::now();
    let again: Vec<_> = (0..n).map(|i| (i, (i + 1) % 3, false)).collect();
    let bad = decide_all(&http, &bases, again).await;
    assert!(
        bad.is_empty(),
        "decides not answered while Redis was down: {bad:?}"
    );
    let mut degraded = 0;
    let mut backlog = 0;
    for b in &bases {
        let health: serde_json::Value = http
            .get(format!("{b}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["status"] == "degraded" && health["store"]["reachable"] == false {
            degraded += 1;
        }
    }
    wait_for(
        "the backlog to wait locally",
        Duration::from_secs(10),
        async || {
            backlog = 0;
            for b in &bases {
                backlog += metric(&http, b, "flagbridge_store_local_backlog")
                    .await
                    .unwrap_or(0);
            }
            backlog > 0
        },
    )
    .await;
    assert_eq!(degraded, 3);
    let left = Duration::from_secs(10).saturating_sub(down_at.elapsed());
    tokio::time::sleep(left).await;
    // Nothing reached Brevo meanwhile: the old state is still there.
    assert_eq!(wrong(&fakes.brevo, n, |_| true).len(), 0);
    redis.restart().unwrap();
    wait_for(
        "the backlog delivered after Redis came back",
        Duration::from_secs(60),
        async || wrong(&fakes.brevo, n, |_| false).is_empty(),
    )
    .await;
    println!("Redis down 10 s: {n} decides answered, {backlog} contact changes waited locally, all delivered after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_received_by_one_replica_refreshes_every_replica() {
    let redis = RedisServer::start().unwrap();
    let fakes = fakes().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let instances: Vec<Instance> = (0..3)
        .map(|k| start(dir.path(), &format!("i{k}"), &fakes, &redis, 10))
        .collect();
    ready(&http, &instances.iter().collect::<Vec<_>>()).await;
    let revision = async |base: &str| -> String {
        let health: serde_json::Value = http
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["projects"][0]["revision"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for i in &instances {
        assert_eq!(revision(&i.base).await, "1");
    }
    // Polling is hourly: only the webhook (to replica 0) and the fleet can bring revision 2.
    fakes.cdn.set_datafile(KEY, datafile("2"));
    let body = json!({"project_id": 13001, "timestamp": 1, "event": "project.datafile_updated",
        "data": {"revision": 2, "cdn_url": "x"}})
    .to_string();
    let answer = http
        .post(format!("{}/webhooks/optimizely", instances[0].base))
        .header(
            "X-Hub-Signature",
            webhook::sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes()),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    for i in &instances {
        wait_for(
            "every replica on revision 2",
            Duration::from_secs(20),
            async || revision(&i.base).await == "2",
        )
        .await;
    }
}
