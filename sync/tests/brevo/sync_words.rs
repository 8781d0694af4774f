//! `flagbridge sync` says what it does: pacing, `/v2/projects`, 429/202/204 in words, a failed
//! listing keeps the last good catalog. Against the in-process fake Optimizely REST server.

use std::process::Command;
use std::time::{Duration, Instant};

use flagbridge_sync::connector::config::Config;
use flagbridge_sync::connector::scheduled::{run_once, DryRunLists, RunOptions};
use flagbridge_sync::testing::optimizely_rest::{
    experiment, results_body, FakeRest, ResultsAnswer,
};

fn state_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fb-words-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Config text for one project on the fake; `extra` goes under `connectors.optimizely`.
fn yaml(rest: &FakeRest, dir: &std::path::Path, token: &str, project: &str, extra: &str) -> String {
    format!(
        "state_dir: {dir}\nconnectors:\n  optimizely:\n    access_token: {token}\n    sdk_key: WEB\n    project_id: {project}\n    urls: {{rest: '{rest}', flags: '{flags}'}}\n{extra}",
        dir = dir.display(),
        rest = rest.rest_base(),
        flags = rest.flags_base(),
    )
}

/// A project with every case: a winner behind a 429 and a 202, a 204, a paused experiment.
async fn scripted_fake() -> FakeRest {
    let rest = FakeRest::start("pat").await;
    {
        let mut s = rest.state.lock().unwrap();
        s.experiments.insert(
            "100".into(),
            vec![
                experiment(11, "checkout", "running", &[(1, "control"), (2, "blue")]),
                experiment(12, "fresh", "running", &[(3, "a"), (4, "b")]),
                experiment(13, "draft", "paused", &[(5, "a")]),
            ],
        );
        s.results.insert(
            "11".into(),
            [
                ResultsAnswer::Computing,
                ResultsAnswer::Ready(results_body(11, 1, &[(2, "better", true)])),
            ]
            .into(),
        );
        s.results
            .insert("12".into(), [ResultsAnswer::NoData].into());
        s.audiences.insert(
            "100".into(),
            vec![serde_json::json!({"id": 7, "name": "Beta"})],
        );
        s.throttle_next = 1;
    }
    rest
}

#[tokio::test]
async fn run_names_no_data_not_running_and_still_computing() {
    let rest = scripted_fake().await;
    rest.state
        .lock()
        .unwrap()
        .results
        .insert("11".into(), [ResultsAnswer::Computing].into());
    let dir = state_dir("names");
    let fast = "    rate_limit: {requests_per_minute: 600000, results_per_minute: 600000}\n";
    let config = Config::from_yaml(&yaml(&rest, &dir, "pat", "100", fast), &|_| None).unwrap();
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        ..Default::default()
    };
    let reports = run_once(&config, &DryRunLists::new(), &options)
        .await
        .unwrap();
    let r = &reports[0];
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.no_data, ["fresh"]);
    assert_eq!(r.not_running, ["draft (paused)"]);
    assert_eq!(r.still_computing, ["checkout"]);
    let words = r.summary();
    eprintln!("{words}");
    assert!(words.contains("no data yet (204) for: fresh"), "{words}");
    assert!(
        words.contains("not running, so no results asked: draft (paused)"),
        "{words}"
    );
    assert!(words.contains("still being computed (202)"), "{words}");
    // The project was checked against `GET /v2/projects` first (after one 429).
    let log = rest.log();
    assert_eq!(&log[..2], ["/v2/projects", "/v2/projects"], "{log:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unknown_project_and_bad_token_are_said_in_words() {
    let rest = scripted_fake().await;
    rest.state.lock().unwrap().throttle_next = 0;
    let dir = state_dir("unknown");
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        rest_pacing: Some(vec![
            flagbridge_sync::connector::rest::ratelimit::Window::per_second(10_000),
        ]),
        ..Default::default()
    };
    let config = Config::from_yaml(&yaml(&rest, &dir, "pat", "999", ""), &|_| None).unwrap();
    let reports = run_once(&config, &DryRunLists::new(), &options)
        .await
        .unwrap();
    let err = reports[0].errors.join("\n");
    assert!(
        err.contains("project_id 999 is not among the 1 project(s) this access_token can read: 100 (project 100)"),
        "{err}"
    );
    assert_eq!(rest.log(), ["/v2/projects"], "nothing else asked");

    let config = Config::from_yaml(&yaml(&rest, &dir, "revoked", "100", ""), &|_| None).unwrap();
    let reports = run_once(&config, &DryRunLists::new(), &options)
        .await
        .unwrap();
    let words = reports[0].summary();
    assert!(
        words.contains("HTTP 401: check access_token (expired or revoked?)"),
        "{words}"
    );
    assert_eq!(rest.log().len(), 2, "one 401, then the project stops");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn failed_listing_keeps_the_last_good_catalog() {
    let rest = scripted_fake().await;
    let dir = state_dir("catalog");
    let fast = "    rate_limit: {requests_per_minute: 600000, results_per_minute: 600000}\n";
    let config = Config::from_yaml(&yaml(&rest, &dir, "pat", "100", fast), &|_| None).unwrap();
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        ..Default::default()
    };
    let lists = DryRunLists::new();
    let first = run_once(&config, &lists, &options).await.unwrap();
    assert!(first[0].errors.is_empty(), "{:?}", first[0].errors);
    let catalog_path = dir.join("catalog-default.json");
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&catalog_path).unwrap()).unwrap();
    assert_eq!(before["audiences"][0]["name"], "Beta");
    assert_eq!(before["experiments"].as_array().unwrap().len(), 3);

    {
        let mut s = rest.state.lock().unwrap();
        s.broken_listings = vec!["audiences".into(), "experiments".into()];
        s.audiences.clear();
    }
    let second = run_once(&config, &lists, &options).await.unwrap();
    let r = &second[0];
    assert_eq!(r.listings_kept, ["experiments", "audiences"]);
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&catalog_path).unwrap()).unwrap();
    assert_eq!(after["audiences"], before["audiences"]);
    assert_eq!(after["experiments"], before["experiments"]);
    // The kept experiments still drive the results: checkout's winner is found again.
    assert_eq!(r.winners.len(), 1, "{r:?}");
    assert!(r
        .summary()
        .contains("last good list kept for: experiments, audiences"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The configured pacing spreads every call of a token evenly, across two runs: no two
/// requests reach the fake closer together than the spacing allows (with half the spacing as slack for the network:
/// the limiter stamps the start of a call, the fake its arrival).
#[tokio::test]
async fn pacing_never_bursts_across_runs() {
    let rest = scripted_fake().await;
    rest.state.lock().unwrap().throttle_next = 0;
    let dir = state_dir("pacing");
    // 240 per minute = one every 250 ms; results 120 per minute = one every 500 ms.
    let paced = "    rate_limit: {requests_per_minute: 240, results_per_minute: 120}\n";
    let config = Config::from_yaml(&yaml(&rest, &dir, "pat", "100", paced), &|_| None).unwrap();
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        ..Default::default()
    };
    let lists = DryRunLists::new();
    run_once(&config, &lists, &options).await.unwrap();
    run_once(&config, &lists, &options).await.unwrap();
    let (log, arrivals): (Vec<String>, Vec<Instant>) = {
        let s = rest.state.lock().unwrap();
        (s.log.clone(), s.arrivals.clone())
    };
    assert!(log.len() >= 10, "{log:?}");
    for (i, pair) in arrivals.windows(2).enumerate() {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(125),
            "{} then {} only {gap:?} apart",
            log[i],
            log[i + 1]
        );
    }
    let results: Vec<Instant> = log
        .iter()
        .zip(&arrivals)
        .filter(|(l, _)| l.ends_with("/results"))
        .map(|(_, t)| *t)
        .collect();
    assert!(results.len() >= 4, "{log:?} {arrivals:?}");
    for pair in results.windows(2) {
        assert!(pair[1].duration_since(pair[0]) >= Duration::from_millis(300));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `flagbridge sync --once` as a user runs it: a line for the 429 wait and for the 202, the
/// per-project summary in words on stderr, the JSON report on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sync_once_says_what_it_does() {
    let rest = scripted_fake().await;
    let dir = state_dir("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("flagbridge.yaml");
    let fast = "    rate_limit: {requests_per_minute: 600000, results_per_minute: 600000, results_retry_secs: 0}\n";
    std::fs::write(&config, yaml(&rest, &dir, "pat", "100", fast)).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_flagbridge"))
            .args(["sync", "--once", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "{stdout}{stderr}");
    for want in [
        "429 Too Many Requests (rate limited) for /v2/projects; waiting",
        "results of checkout still being computed by Optimizely (202); asking again in 0 s",
        "project default (Optimizely project 100):",
        "listed 3 experiments, 0 flags, 1 audience and 0 events",
        "no data yet (204) for: fresh",
        "not running, so no results asked: draft (paused)",
        "winner: checkout -> blue",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    let report: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(report["no_data"][0], "fresh");
    let _ = std::fs::remove_dir_all(&dir);
}
