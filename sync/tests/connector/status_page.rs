//! The status page of `serve` in a real browser: headless Chromium (Debian's `chromium`)
//! loads `GET /`, its script polls `/status.json`, and the rendered text says, in words, the
//! datafile revision, decisions and conversions, the Brevo backlog, 429s, set-aside contacts
//! and users without the identity attribute, and the last REST sync with its winners' list.
//! Skips (saying why) when no `chromium` is on the PATH; CI installs it (`.ci/run`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flagbridge_sync::connector::config::{Config, Secret};
use flagbridge_sync::connector::rest::ratelimit::Window;
use flagbridge_sync::connector::scheduled::{
    run_once, Assignment, BrevoLists, MembershipWriter, RunOptions,
};
use flagbridge_sync::connector::serve::{self, RuntimeOptions};
use flagbridge_sync::testing::datafile;
use flagbridge_sync::testing::fake_brevo::FakeBrevo;
use flagbridge_sync::testing::optimizely_rest::{
    experiment, results_body, FakeRest, ResultsAnswer,
};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

/// Runs Chromium on `url`: returns the DOM after the script ran (`--dump-dom`), and writes a
/// screenshot to `shot`.
fn browse(chromium: &Path, url: &str, shot: &Path, profile: &Path) -> String {
    let run = |extra: &str| {
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1100,1400",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(extra)
            .arg(url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium {extra} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let dom = run("--dump-dom");
    run(&format!("--screenshot={}", shot.display()));
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    dom
}

/// The visible text of the DOM: tags dropped, entities that the page uses decoded, spaces
/// collapsed.
fn text_of(html: &str) -> String {
    let body = html.split("<script").next().unwrap_or(html);
    let body = match (body.find("<style"), body.find("</style>")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &body[..a], &body[b..]),
        _ => body.to_string(),
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&amp;", "&")
        .replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&quot;", "\"");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        println!(
            "SKIPPED status_page_in_a_real_browser: no `chromium` on the PATH \
             (apt-get install -y chromium; CI installs it in .ci/run)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("fb-status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let df = dir.join("datafile.json");
    std::fs::write(&df, datafile("42")).unwrap();

    // Brevo refuses one contact (and, once `serve` runs, answers one write with 429).
    let brevo = FakeBrevo::start_with_key(100_000, "bkey").await;
    brevo.with(|b| b.refuse.insert("refused@example.com".to_string()));
    // Optimizely REST: experiment 11 has a winner.
    let rest = FakeRest::start("pat").await;
    {
        let mut s = rest.state.lock().unwrap();
        s.experiments.insert(
            "100".into(),
            vec![
                experiment(11, "checkout", "running", &[(1, "control"), (2, "blue")]),
                experiment(12, "draft", "paused", &[(3, "a")]),
            ],
        );
        s.results.insert(
            "11".into(),
            [ResultsAnswer::Ready(results_body(
                11,
                1,
                &[(2, "better", true)],
            ))]
            .into(),
        );
    }
    let yaml = format!(
        "state_dir: {state}\nconnectors:\n  optimizely:\n    sdk_key: WEB\n    project_id: 100\n    access_token: pat\n    datafile_file: {df}\n    events: {{disabled: true}}\n    urls: {{rest: '{rest}', flags: '{flags}'}}\n  brevo:\n    api_key: bkey\n    base_url: '{brevo}'\n    winners_folder_id: 7\n",
        state = dir.join("state").display(),
        df = df.display(),
        rest = rest.rest_base(),
        flags = rest.flags_base(),
        brevo = brevo.url(),
    );
    let config = Config::from_yaml(&yaml, &|_| None).unwrap();

    // The last REST sync (as `flagbridge sync` would have run it with this state directory).
    let state = config.state_dir.clone();
    std::fs::create_dir_all(&state).unwrap();
    let mut w = MembershipWriter::open(&state.join("assignments.jsonl")).unwrap();
    w.record([Assignment {
        project: "default".into(),
        experiment_id: "11".into(),
        variation_id: "2".into(),
        user_id: "u1".into(),
        contact: Some("u1@example.com".into()),
    }])
    .unwrap();
    drop(w);
    brevo.add_contacts(["u1@example.com"]);
    let lists = BrevoLists::new(
        brevo.base().parse().unwrap(),
        Secret::new("bkey"),
        Some(7),
        100,
    )
    .unwrap()
    .by_email();
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        rest_pacing: Some(vec![Window::per_second(10_000)]),
        ..Default::default()
    };
    let reports = run_once(&config, &lists, &options).await.unwrap();
    assert_eq!(reports[0].winners.len(), 1, "{:?}", reports[0]);

    // `serve` on a free loopback port, with some traffic.
    brevo.with(|b| b.throttle_next = 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve::start(
        config,
        listener,
        RuntimeOptions {
            brevo_flush_interval: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let addr = handle.local_addr();
    for (user, email) in [
        ("u1", Some("u1@example.com")),
        ("u2", Some("refused@example.com")),
        ("u3", None),
    ] {
        let attrs = match email {
            Some(e) => format!("{{\"email\": \"{e}\", \"plan\": \"pro\"}}"),
            None => "{\"plan\": \"pro\"}".into(),
        };
        let body = format!("{{\"userId\": \"{user}\", \"userAttributes\": {attrs}}}");
        assert_eq!(post(addr, "/v1/decide", &body).await, 200);
    }
    let track = "{\"userId\": \"u1\", \"userAttributes\": {\"email\": \"u1@example.com\"}}";
    assert_eq!(post(addr, "/v1/track?eventKey=purchase", track).await, 200);
    handle.runtime().flush().await;

    let shot = dir.join("status-page.png");
    let url = format!("http://{addr}/");
    let (chromium2, url2, shot2, profile) = (
        chromium.clone(),
        url.clone(),
        shot.clone(),
        dir.join("chromium-profile"),
    );
    let dom = tokio::task::spawn_blocking(move || browse(&chromium2, &url2, &shot2, &profile))
        .await
        .unwrap();
    let text = text_of(&dom);
    println!("status page screenshot: {}", shot.display());
    println!("status page text: {text}");
    for want in [
        "flagbridge status",
        "Project default: datafile revision 42, loaded ",
        "6 decisions and 1 conversion since the server started.",
        "Writing to Brevo.",
        "Brevo answered 429 (too many requests) 1 time",
        "1 contact update set aside: refused by Brevo",
        "of users without the `email` attribute: decided, not written to Brevo.",
        "Project default: last sync ",
        "listed 2 experiments, 0 flags, 0 audiences and 0 events; results ready for 1 experiment.",
        "Winner checkout → blue: Brevo list “flagbridge default checkout winner blue”, 1 contact added.",
        "Not running, so no results: draft (paused).",
        "refreshed every 2 seconds",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("Loading the status"), "{text}");
    // Refreshed live: each browser run polled `/status.json` more than once.
    let polls: u64 = handle
        .runtime()
        .snapshot()
        .http_requests
        .iter()
        .filter(|(route, status, _)| route == "/status.json" && *status == 200)
        .map(|(_, _, n)| n)
        .sum();
    println!("status page polled /status.json {polls} times in two browser runs");
    assert!(
        polls >= 4,
        "two browser runs, {polls} polls of /status.json"
    );
    handle.shutdown().await.unwrap();
}

/// Without a browser: `/status.json` holds the numbers the page puts in words, and `/` is the
/// page that polls it (this part runs everywhere, Chromium or not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_holds_the_numbers() {
    let dir = std::env::temp_dir().join(format!("fb-status-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let df = dir.join("datafile.json");
    std::fs::write(&df, datafile("17")).unwrap();
    let yaml = format!(
        "state_dir: {}\nconnectors:\n  optimizely:\n    sdk_key: WEB\n    datafile_file: {}\n    events: {{disabled: true}}\n",
        dir.join("state").display(),
        df.display()
    );
    let config = Config::from_yaml(&yaml, &|_| None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve::start(config, listener, RuntimeOptions::default())
        .await
        .unwrap();
    let addr = handle.local_addr();
    let with_email = "{\"userId\": \"a\", \"userAttributes\": {\"email\": \"a@example.com\"}}";
    assert_eq!(post(addr, "/v1/decide", with_email).await, 200);
    assert_eq!(post(addr, "/v1/decide", "{\"userId\": \"b\"}").await, 200);
    handle.runtime().flush().await;

    let page = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>flagbridge status</title>"));
    assert!(html.contains("fetch(\"status.json\""));

    let status: serde_json::Value = reqwest::get(format!("http://{addr}/status.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &status["projects"][0];
    assert_eq!(p["name"], "default");
    assert_eq!(p["revision"], "17");
    assert_eq!(p["decisions"], 4, "two users, two flags each");
    assert_eq!(status["brevo"]["dry_run"], true);
    assert_eq!(status["brevo"]["identity_attribute"], "email");
    assert_eq!(status["brevo"]["skipped_no_identity"], 2, "{status}");
    assert!(status["last_sync"].is_null(), "no sync has run: {status}");
    handle.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
