//! `flagbridge sync --once` against fake Optimizely REST and Brevo servers.

use std::time::Duration;

use flagbridge_sync::connector::config::Config;
use flagbridge_sync::connector::rest::ratelimit::Window;
use flagbridge_sync::connector::scheduled::{
    run_once, Assignment, BrevoLists, MembershipWriter, RunOptions,
};
use flagbridge_sync::testing::fake_brevo::FakeBrevo;
use flagbridge_sync::testing::optimizely_rest::{
    experiment, results_body, FakeRest, ResultsAnswer,
};

fn assignment(project: &str, exp: u64, var: u64, user: &str) -> Assignment {
    Assignment {
        project: project.into(),
        experiment_id: exp.to_string(),
        variation_id: var.to_string(),
        user_id: user.into(),
        contact: None,
    }
}

#[tokio::test]
async fn sync_once_creates_winner_lists() {
    let rest = FakeRest::start("pat").await;
    let brevo = FakeBrevo::start_with_key(100_000, "bkey").await;
    {
        let mut s = rest.state.lock().unwrap();
        s.experiments.insert(
            "100".into(),
            vec![
                experiment(
                    11,
                    "checkout",
                    "running",
                    &[(1, "control"), (2, "blue"), (3, "green")],
                ),
                experiment(12, "banner", "running", &[(4, "off"), (5, "on")]),
                experiment(13, "draft", "not_started", &[(6, "a")]),
                experiment(14, "fresh", "concluded", &[(7, "a"), (8, "b")]),
            ],
        );
        s.results.insert(
            "11".into(),
            [ResultsAnswer::Ready(results_body(
                11,
                1,
                &[(2, "better", true), (3, "better", false)],
            ))]
            .into(),
        );
        s.results.insert(
            "12".into(),
            [
                ResultsAnswer::Computing,
                ResultsAnswer::Ready(results_body(12, 4, &[(5, "worse", true)])),
            ]
            .into(),
        );
        s.results
            .insert("14".into(), [ResultsAnswer::NoData].into());
        s.experiments.insert(
            "200".into(),
            vec![experiment(
                21,
                "pricing",
                "concluded",
                &[(9, "old"), (10, "new")],
            )],
        );
        s.results.insert(
            "21".into(),
            [ResultsAnswer::Ready(results_body(
                21,
                9,
                &[(10, "better", true)],
            ))]
            .into(),
        );
        s.flags.insert(
            "100".into(),
            vec![serde_json::json!({"key": "checkout_flag"})],
        );
        s.throttle_next = 1;
    }
    brevo.add_contacts(["u1", "u2", "u3", "m1"]);
    brevo.with(|b| b.throttle_next = 1);
    let dir = std::env::temp_dir().join(format!("fb-sync-once-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let yaml = format!(
        "state_dir: {dir}\nconnectors:\n  optimizely:\n    access_token: pat\n    sdk_key: WEB\n    project_id: 100\n    urls: {{rest: '{rest}', flags: '{flags}'}}\n    projects:\n      - {{name: mobile, sdk_key: MOB, project_id: 200}}\n  brevo:\n    api_key: bkey\n    base_url: '{brevo}'\n    winners_folder_id: 7\n",
        dir = dir.display(),
        rest = rest.rest_base(),
        flags = rest.flags_base(),
        brevo = brevo.base(),
    );
    let config = Config::from_yaml(&yaml, &|_| None).unwrap();
    let mut w = MembershipWriter::open(&dir.join("assignments.jsonl")).unwrap();
    w.record([
        assignment("default", 11, 2, "u1"),
        assignment("default", 11, 2, "u2"),
        assignment("default", 11, 3, "u3"),
        assignment("default", 12, 5, "u3"),
        assignment("mobile", 21, 10, "m1"),
        assignment("mobile", 21, 10, "m2-not-in-brevo"),
    ])
    .unwrap();

    let lists = BrevoLists::new(
        brevo.base().parse().unwrap(),
        "bkey".into_secret(),
        Some(7),
        100,
    )
    .unwrap();
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        rest_pacing: Some(vec![Window::per_second(1000)]),
        ..Default::default()
    };
    let reports = run_once(&config, &lists, &options).await.unwrap();
    assert_eq!(reports.len(), 2);
    let web = &reports[0];
    assert!(web.errors.is_empty(), "{:?}", web.errors);
    assert_eq!((web.experiments, web.flags), (4, 1));
    assert_eq!(
        (
            web.results_ready,
            web.results_no_data,
            web.results_computing
        ),
        (2, 1, 0)
    );
    assert_eq!(web.winners.len(), 1, "{:?}", web.winners);
    assert_eq!(web.winners[0].variation_key, "blue");
    assert_eq!(web.winners[0].added, 2);
    let mobile = &reports[1];
    assert_eq!(mobile.winners[0].added, 1);
    assert_eq!(mobile.winners[0].unknown, 1);

    let got = brevo.lists();
    assert_eq!(
        got,
        vec![
            (
                "flagbridge default checkout winner blue".to_string(),
                vec!["u1".to_string(), "u2".to_string()]
            ),
            (
                "flagbridge mobile pricing winner new".to_string(),
                vec!["m1".to_string()]
            ),
        ]
    );
    // Contacts join the lists in batches, not one PUT each.
    assert_eq!(brevo.count_requests("PUT", "/contacts/{id}"), 0);
    assert_eq!(
        brevo.count_requests("POST", "/contacts/lists/{id}/contacts/add"),
        2
    );
    // Not-started experiments are not asked for results.
    assert!(!rest.log().iter().any(|l| l.contains("/13/results")));

    // A second run finds the lists, adds nobody twice, and retries the unknown contact.
    brevo.add_contacts(["m2-not-in-brevo"]);
    let reports = run_once(&config, &lists, &options).await.unwrap();
    assert_eq!(reports[0].winners[0].added, 0);
    assert_eq!(reports[1].winners[0].added, 2);
    assert_eq!(brevo.lists().len(), 2);
    assert_eq!(brevo.lists()[1].1, ["m1", "m2-not-in-brevo"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

trait IntoSecret {
    fn into_secret(self) -> flagbridge_sync::connector::config::Secret;
}
impl IntoSecret for &str {
    fn into_secret(self) -> flagbridge_sync::connector::config::Secret {
        flagbridge_sync::connector::config::Secret::new(self)
    }
}

#[tokio::test]
async fn list_failures_are_reported_per_project() {
    let rest = FakeRest::start("pat").await;
    {
        let mut s = rest.state.lock().unwrap();
        s.experiments.insert(
            "100".into(),
            vec![experiment(
                11,
                "checkout",
                "running",
                &[(1, "control"), (2, "blue")],
            )],
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
    let brevo = FakeBrevo::start_with_key(100_000, "bkey").await;
    let dir = std::env::temp_dir().join(format!("fb-sync-nofolder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let yaml = format!(
        "state_dir: {}\nconnectors:\n  optimizely:\n    access_token: pat\n    sdk_key: WEB\n    project_id: 100\n    urls: {{rest: '{}', flags: '{}'}}\n",
        dir.display(),
        rest.rest_base(),
        rest.flags_base(),
    );
    let config = Config::from_yaml(&yaml, &|_| None).unwrap();
    // No folder: Brevo cannot create the list.
    let lists = BrevoLists::new(
        brevo.base().parse().unwrap(),
        "bkey".into_secret(),
        None,
        100,
    )
    .unwrap();
    let options = RunOptions {
        results_retry_delay: Duration::ZERO,
        rest_pacing: Some(vec![Window::per_second(1000)]),
        ..Default::default()
    };
    let reports = run_once(&config, &lists, &options).await.unwrap();
    assert!(reports[0].winners.is_empty());
    assert_eq!(reports[0].errors.len(), 1, "{:?}", reports[0].errors);
    assert!(
        reports[0].errors[0].contains("winners_folder_id"),
        "{:?}",
        reports[0].errors
    );
    assert!(brevo.lists().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
