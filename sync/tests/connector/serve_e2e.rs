//! `flagbridge serve` end to end, in process: two projects on a fake CDN, a fake event
//! endpoint and a fake Brevo; 1,000 users decided over HTTP; a datafile change pushed by the
//! webhook; Brevo's contacts checked against the decisions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flagbridge_sync::connector::config::{Config, Secret};
use flagbridge_sync::connector::rest::ratelimit::Window;
use flagbridge_sync::connector::scheduled::{run_once, BrevoLists, RunOptions};
use flagbridge_sync::connector::serve::{self, webhook, RuntimeOptions, ServeHandle};
use flagbridge_sync::testing::fake_brevo::{FakeBrevo, API_KEY};
use flagbridge_sync::testing::optimizely_rest::{
    experiment, results_body, FakeRest, ResultsAnswer,
};
use flagbridge_sync::testing::{datafile_json, FakeCdn, FakeEventEndpoint};
use serde_json::{json, Value};

const KEY_A: &str = "KeyWeb";
const KEY_B: &str = "KeyMobile";
const SECRET: &str = "whsec-web";

fn datafile(sdk_key: &str, project_id: &str, revision: &str, banner_on: bool) -> String {
    let mut d = datafile_json(revision);
    d["sdkKey"] = json!(sdk_key);
    d["projectId"] = json!(project_id);
    d["rollouts"][1]["experiments"][0]["variations"][0]["featureEnabled"] = json!(banner_on);
    d.to_string()
}

struct World {
    cdn: FakeCdn,
    events: FakeEventEndpoint,
    brevo: FakeBrevo,
    dir: std::path::PathBuf,
}

async fn world(tag: &str) -> World {
    let cdn = FakeCdn::start().await.unwrap();
    cdn.set_datafile(KEY_A, datafile(KEY_A, "13001", "1", true));
    cdn.set_datafile(KEY_B, datafile(KEY_B, "13002", "1", true));
    let events = FakeEventEndpoint::start().await.unwrap();
    let brevo = FakeBrevo::start(100_000).await;
    let dir = std::env::temp_dir().join(format!("fb-serve-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    World {
        cdn,
        events,
        brevo,
        dir,
    }
}

fn config(w: &World, extra_server: &str) -> Config {
    let yaml = format!(
        r#"
state_dir: {dir}
server:
  listen: 127.0.0.1:0
  max_body_bytes: 4096
  max_batch_operations: 3
{extra_server}
connectors:
  optimizely:
    sdk_key: {KEY_A}
    project_id: 13001
    webhook_secret: {SECRET}
    datafile: {{poll_interval_secs: 3600}}
    events: {{batch_size: 50, flush_interval_secs: 1}}
    urls:
      cdn: {cdn}
      events: {events}
    projects:
      - name: mobile
        sdk_key: {KEY_B}
        project_id: 13002
        webhook_secret: whsec-mobile
  brevo:
    api_key: {API_KEY}
    base_url: {brevo}
    rate_limit: {{per_second: 50000, per_hour: 100000000}}
"#,
        dir = w.dir.display(),
        cdn = w.cdn.base_url(),
        events = w.events.url(),
        brevo = w.brevo.url(),
    );
    Config::from_yaml(&yaml, &|_| None).unwrap()
}

async fn start(w: &World, extra_server: &str) -> ServeHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = RuntimeOptions {
        brevo_flush_interval: Duration::from_millis(50),
        ..Default::default()
    };
    serve::start(config(w, extra_server), listener, options)
        .await
        .unwrap()
}

fn user_body(i: usize) -> Value {
    let plan = if i % 2 == 0 { "pro" } else { "free" };
    json!({"userId": format!("user-{i}"), "userAttributes": {"plan": plan, "email": format!("user{i}@example.com")}})
}

async fn decide(http: &reqwest::Client, base: &str, key: &str, body: &Value) -> Vec<Value> {
    let resp = http
        .post(format!("{base}/v1/decide"))
        .header("X-Optimizely-SDK-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn by_flag(decisions: &[Value]) -> BTreeMap<String, Value> {
    decisions
        .iter()
        .map(|d| (d["flagKey"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_thousand_users_webhook_and_brevo() {
    let w = world("e2e").await;
    let handle = start(&w, "").await;
    let base = format!("http://{}", handle.local_addr());
    let http = reqwest::Client::new();

    // 1,000 users on the web project, 200 on mobile.
    for i in 0..1000 {
        let d = by_flag(&decide(&http, &base, KEY_A, &user_body(i)).await);
        let checkout = &d["checkout"];
        if i % 2 == 0 {
            assert_eq!(checkout["ruleKey"], "checkout_test", "user {i}");
            assert_eq!(checkout["variationKey"], "treatment");
            assert_eq!(checkout["variables"]["color"], "blue-1");
        } else {
            assert_eq!(checkout["ruleKey"], "checkout_rollout", "user {i}");
            assert_eq!(checkout["variables"]["color"], "grey");
        }
        assert_eq!(d["banner"]["enabled"], true);
        assert_eq!(checkout["userContext"]["userId"], format!("user-{i}"));
    }
    for i in 1000..1200 {
        let d = by_flag(&decide(&http, &base, KEY_B, &user_body(i)).await);
        assert_eq!(d["banner"]["enabled"], true);
    }

    // Single key -> one object, not an array.
    let one: Value = http
        .post(format!("{base}/v1/decide?keys=banner"))
        .header("X-Optimizely-SDK-Key", KEY_A)
        .json(&user_body(1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["flagKey"], "banner");

    // A wrong signature is refused and changes nothing.
    w.cdn
        .set_datafile(KEY_A, datafile(KEY_A, "13001", "2", false));
    let hook = json!({"project_id": 13001, "timestamp": 1_764_000_000, "event": "project.datafile_updated",
        "data": {"revision": 2, "cdn_url": format!("{}/datafiles/{KEY_A}.json", w.cdn.base_url()), "environment": "Production"}})
    .to_string();
    let bad = http
        .post(format!("{base}/webhooks/optimizely"))
        .header("X-Hub-Signature", webhook::sign(b"wrong", hook.as_bytes()))
        .body(hook.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    // The signed webhook makes the new datafile live.
    let fired = Instant::now();
    let ok = http
        .post(format!("{base}/webhooks/optimizely"))
        .header(
            "X-Hub-Signature",
            webhook::sign(SECRET.as_bytes(), hook.as_bytes()),
        )
        .body(hook)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let mut changed = false;
    let mut polls = 0;
    for _ in 0..500 {
        polls += 1;
        let d = by_flag(&decide(&http, &base, KEY_A, &user_body(0)).await);
        if d["checkout"]["variables"]["color"] == "blue-2" {
            assert_eq!(d["banner"]["enabled"], false);
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(changed, "decisions did not change after the webhook");
    eprintln!("decisions changed {:?} after the webhook", fired.elapsed());
    // The other project is untouched.
    let d = by_flag(&decide(&http, &base, KEY_B, &user_body(2)).await);
    assert_eq!(d["banner"]["enabled"], true);
    // Re-decide the first 100 web users on the new datafile.
    for i in 0..100 {
        decide(&http, &base, KEY_A, &user_body(i)).await;
    }

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // 2 flags per decide-all: 1,000 users, the polls, 100 re-decided; plus one single-key decide.
    let web_decisions = 2 * (1000 + polls + 100) + 1;
    let want = format!("flagbridge_decisions_total{{project=\"default\"}} {web_decisions}");
    assert!(metrics.contains(&want), "{want}\n{metrics}");
    assert!(
        metrics.contains("flagbridge_decisions_total{project=\"mobile\"} 402"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flagbridge_datafile_revision{project=\"default\"} 2"),
        "{metrics}"
    );

    // Graceful shutdown alone sends the queued events and flushes the Brevo outbox.
    handle.shutdown().await.unwrap();

    // Brevo holds one contact per user, with the latest decisions.
    for i in 0..1200 {
        let email = format!("user{i}@example.com");
        let c = w
            .brevo
            .contact(&email)
            .unwrap_or_else(|| panic!("no contact {email}"));
        let a = &c.attributes;
        let enabled = a
            .get("ENABLED_FEATURES")
            .and_then(Value::as_str)
            .unwrap_or("");
        let redecided = i < 100;
        let want = if redecided {
            "checkout"
        } else {
            "banner,checkout"
        };
        assert_eq!(enabled, want, "{email}: {a:?}");
        if i % 2 == 0 {
            assert_eq!(a["VARIATION_NAME"], "treatment", "{email}: {a:?}");
            assert_eq!(a["EXPERIMENT_NAME"], "checkout_test", "{email}: {a:?}");
        } else {
            assert!(a.get("VARIATION_NAME").is_none(), "{email}: {a:?}");
        }
    }
    // Events reached the event endpoint: one impression per decision (sendFlagDecisions).
    let visitors = w.events.visitors().len();
    assert_eq!(visitors, web_decisions + 2 * 201, "impressions");
    // The assignment record lists the web project's experiment users.
    let (store, _) = flagbridge_sync::connector::scheduled::MembershipStore::load(
        &w.dir.join("assignments.jsonl"),
    )
    .unwrap();
    assert_eq!(store.members("default", "50001", "90001").len(), 500);
    // 100 pro users of 1000..1200, plus user-2 decided there after the webhook.
    assert_eq!(store.members("mobile", "50001", "90001").len(), 101);

    // `sync --once` turns what serve recorded into the winner's Brevo list (email identity).
    let rest = FakeRest::start("pat").await;
    {
        let mut s = rest.state.lock().unwrap();
        s.experiments.insert(
            "13001".into(),
            vec![experiment(
                50001,
                "checkout_test",
                "running",
                &[(90001, "treatment")],
            )],
        );
        s.results.insert(
            "50001".into(),
            [ResultsAnswer::Ready(results_body(
                50001,
                90000,
                &[(90001, "better", true)],
            ))]
            .into(),
        );
    }
    let lists = FakeBrevo::start(100_000).await;
    let pro: Vec<String> = (0..1000)
        .step_by(2)
        .map(|i| format!("user{i}@example.com"))
        .collect();
    lists.add_contacts(pro.iter().map(String::as_str));
    let mut config = config(&w, "");
    config.projects[0].access_token = Some(Secret::new("pat"));
    config.urls.rest = rest.rest_base().parse().unwrap();
    config.urls.flags = rest.flags_base().parse().unwrap();
    let writer = BrevoLists::new(
        lists.base().parse().unwrap(),
        Secret::new(API_KEY),
        Some(1),
        10_000,
    )
    .unwrap()
    .by_email();
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        rest_pacing: Some(vec![Window::per_second(10_000)]),
        ..Default::default()
    };
    let reports = run_once(&config, &writer, &options).await.unwrap();
    assert_eq!(reports[0].winners.len(), 1, "{reports:?}");
    assert_eq!(reports[0].winners[0].added, 500);
    assert!(reports[1].skipped.is_some(), "mobile has no access token");
    let got = lists.lists();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].0,
        "flagbridge default checkout_test winner treatment"
    );
    let mut want = pro.clone();
    want.sort();
    assert_eq!(got[0].1, want);
    let _ = std::fs::remove_dir_all(&w.dir);
}

#[tokio::test]
async fn agent_api_edges() {
    let w = world("edges").await;
    let handle = start(&w, "  auth_token: t0ken").await;
    let base = format!("http://{}", handle.local_addr());
    let http = reqwest::Client::new();
    let post = |path: &str| http.post(format!("{base}{path}")).bearer_auth("t0ken");

    // Auth.
    let r = http
        .post(format!("{base}/v1/decide"))
        .json(&user_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // /health and /metrics need no token.
    assert_eq!(
        http.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Project selection.
    let r = post("/v1/decide").json(&user_body(1)).send().await.unwrap();
    assert_eq!(r.status(), 400, "two projects: the header is needed");
    let r = post("/v1/decide")
        .header("X-Optimizely-SDK-Key", "nope")
        .json(&user_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Agent's `key:token` form picks the project by its key.
    let r = post("/v1/decide?keys=banner")
        .header(
            "X-Optimizely-SDK-Key",
            format!("{KEY_A}:some-datafile-token"),
        )
        .json(&user_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Bad bodies name what and where.
    let cases = [
        (
            json!({"userId": "u", "decideOptions": ["FAST"]}),
            "body.decideOptions[0]: unknown option `FAST`",
        ),
        (
            json!({"userAttributes": {}}),
            "body: missing field `userId`",
        ),
    ];
    for (body, want) in cases {
        let r = post("/v1/decide")
            .header("X-Optimizely-SDK-Key", KEY_A)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].as_str().unwrap().starts_with(want), "{e}");
    }
    // Body size limit.
    let big = json!({"userId": "u", "userAttributes": {"pad": "x".repeat(5000)}});
    let r = post("/v1/decide")
        .header("X-Optimizely-SDK-Key", KEY_A)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Options, forced decisions.
    let body = json!({"userId": "u", "decideOptions": ["INCLUDE_REASONS", "ENABLED_FLAGS_ONLY"],
        "forcedDecisions": [{"flagKey": "checkout", "variationKey": "treatment"}]});
    let d: Value = post("/v1/decide?keys=checkout")
        .header("X-Optimizely-SDK-Key", KEY_A)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["variationKey"], "treatment");
    assert!(!d["reasons"].as_array().unwrap().is_empty());
    // Track: known and unknown event keys.
    let t: Value = post("/v1/track?eventKey=purchase")
        .header("X-Optimizely-SDK-Key", KEY_A)
        .json(&json!({"userId": "u", "eventTags": {"revenue": 1200}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t, json!({"userId": "u", "eventKey": "purchase"}));
    let t: Value = post("/v1/track?eventKey=nope")
        .header("X-Optimizely-SDK-Key", KEY_A)
        .json(&json!({"userId": "u"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(t["error"].as_str().unwrap().contains("nope"));
    let r = post("/v1/track")
        .header("X-Optimizely-SDK-Key", KEY_A)
        .json(&json!({"userId": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Config and datafile.
    let c: Value = http
        .get(format!("{base}/v1/config"))
        .bearer_auth("t0ken")
        .header("X-Optimizely-SDK-Key", KEY_B)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["sdkKey"], KEY_B);
    assert!(c["featuresMap"]["checkout"].is_object(), "{c}");
    let df: Value = http
        .get(format!("{base}/v1/datafile"))
        .bearer_auth("t0ken")
        .header("X-Optimizely-SDK-Key", KEY_B)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(df["projectId"], "13002");
    // Batch.
    let batch = json!({"operations": [
        {"method": "POST", "url": "/v1/decide", "operationID": "1", "body": {"userId": "u"}, "parameters": {"keys": "banner"},
         "headers": {"X-Optimizely-SDK-Key": KEY_A}},
        {"method": "POST", "url": "/v1/track?eventKey=purchase", "operationID": "2", "body": {"userId": "u"}},
        {"method": "GET", "url": "/v1/nothing", "operationID": "3"}
    ]});
    let b: Value = post("/v1/batch")
        .header("X-Optimizely-SDK-Key", KEY_B)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["errorCount"], 1);
    assert_eq!(b["response"][0]["body"]["flagKey"], "banner");
    assert_eq!(b["response"][1]["status"], 200);
    assert_eq!(b["response"][2]["status"], 400);
    let mut four = batch.clone();
    four["operations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"method": "GET", "url": "/v1/config"}));
    let r = post("/v1/batch").json(&four).send().await.unwrap();
    assert_eq!(r.status(), 422);
    // Webhook: the signature is checked first (unsigned = 401, known project or not); a
    // signed request for an unknown project answers 204 as Agent does; a wrong event 400.
    let hook = |pid: u64, event: &str| {
        json!({"project_id": pid, "timestamp": 1, "event": event, "data": {"revision": 3, "cdn_url": "x"}}).to_string()
    };
    let r = http
        .post(format!("{base}/webhooks/optimizely"))
        .body(hook(999, "project.datafile_updated"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body = hook(999, "project.datafile_updated");
    let r = http
        .post(format!("{base}/webhooks/optimizely"))
        .header(
            "X-Hub-Signature",
            webhook::sign(SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let body = hook(13001, "project.other");
    let r = http
        .post(format!("{base}/webhooks/optimizely"))
        .header(
            "X-Hub-Signature",
            webhook::sign(SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{base}/webhooks/optimizely"))
        .body(hook(13001, "project.datafile_updated"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no signature");
    handle.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&w.dir);
}

#[tokio::test]
async fn embedded_default_serves_the_bundled_datafile() {
    let mut config = serve::embedded_config().unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert!(config.brevo.dry_run);
    assert!(config.events.disabled);
    let dir = std::env::temp_dir().join(format!("fb-serve-embedded-{}", std::process::id()));
    config.state_dir = dir.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve::start(config, listener, RuntimeOptions::default())
        .await
        .unwrap();
    let base = format!("http://{}", handle.local_addr());
    // One project: no SDK key header needed.
    let d: Value = reqwest::Client::new()
        .post(format!("{base}/v1/decide?keys=flag_0000"))
        .json(&json!({"userId": "user-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["flagKey"], "flag_0000");
    let health: Value = reqwest::get(format!("{base}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["projects"][0]["name"], "example");
    handle.shutdown().await.unwrap();
    // Brevo dry run: the requests are in the file, nothing left the machine.
    assert!(dir.join("brevo-dry-run.jsonl").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
