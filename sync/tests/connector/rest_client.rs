//! The REST client against the fake Optimizely REST server.

use std::time::Duration;

use flagbridge_sync::connector::config::Secret;
use flagbridge_sync::connector::rest::ratelimit::Window;
use flagbridge_sync::connector::rest::{RestClient, RestError, ResultsOutcome};
use flagbridge_sync::testing::optimizely_rest::{
    experiment, results_body, FakeRest, ResultsAnswer,
};
use url::Url;

fn client(fake: &FakeRest, token: &str) -> RestClient {
    let fast = vec![Window::per_second(1000)];
    RestClient::builder(
        Url::parse(&fake.rest_base()).unwrap(),
        Url::parse(&fake.flags_base()).unwrap(),
    )
    .timeout(Duration::from_secs(5))
    .v2_limits(fast.clone())
    .flags_limits(fast.clone())
    .results_limits(fast)
    .backoff_base(Duration::from_millis(1))
    .build(Secret::new(token))
    .unwrap()
}

#[tokio::test]
async fn lists_follow_pagination() {
    let fake = FakeRest::start("pat").await;
    {
        let mut s = fake.state.lock().unwrap();
        let exps = (0..250)
            .map(|i| {
                experiment(
                    1000 + i,
                    &format!("exp_{i}"),
                    "running",
                    &[(1, "a"), (2, "b")],
                )
            })
            .collect();
        s.experiments.insert("42".into(), exps);
        let flags = (0..5)
            .map(|i| serde_json::json!({"key": format!("flag_{i}"), "name": "x"}))
            .collect();
        s.flags.insert("42".into(), flags);
        s.audiences.insert(
            "42".into(),
            vec![serde_json::json!({"id": 7, "name": "Beta users", "archived": false})],
        );
    }
    let c = client(&fake, "pat");
    let exps = c.experiments("42").await.unwrap();
    assert_eq!(exps.len(), 250);
    assert_eq!(exps[249].key.as_deref(), Some("exp_249"));
    assert_eq!(exps[0].variations[1].variation_id, "2");
    let flags = c.flags("42").await.unwrap();
    let keys: Vec<&str> = flags.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["flag_0", "flag_1", "flag_2", "flag_3", "flag_4"]);
    let auds = c.audiences("42").await.unwrap();
    assert_eq!(auds[0].id, "7");
    assert!(c.events("42").await.unwrap().is_empty());
    let log = fake.log();
    let exp_pages = log
        .iter()
        .filter(|l| l.starts_with("/v2/experiments?"))
        .count();
    assert_eq!(exp_pages, 3, "{log:?}");
    let flag_pages = log.iter().filter(|l| l.starts_with("/flags/")).count();
    assert_eq!(flag_pages, 3, "{log:?}");
}

#[tokio::test]
async fn too_many_requests_is_retried() {
    let fake = FakeRest::start("pat").await;
    fake.state.lock().unwrap().throttle_next = 2;
    let c = client(&fake, "pat");
    assert!(c.experiments("1").await.unwrap().is_empty());
    assert_eq!(fake.log().len(), 3);
}

#[tokio::test]
async fn bad_token_is_an_error_naming_the_url() {
    let fake = FakeRest::start("pat").await;
    let err = client(&fake, "wrong").experiments("1").await.unwrap_err();
    assert!(
        matches!(err, RestError::Status { status: 401, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("/v2/experiments?project_id=1"),
        "{err}"
    );
}

#[tokio::test]
async fn results_202_204_200() {
    let fake = FakeRest::start("pat").await;
    fake.state.lock().unwrap().results.insert(
        "5".into(),
        [
            ResultsAnswer::NoData,
            ResultsAnswer::Computing,
            ResultsAnswer::Ready(results_body(5, 1, &[(2, "better", true)])),
        ]
        .into(),
    );
    let c = client(&fake, "pat");
    assert_eq!(c.results("5").await.unwrap(), ResultsOutcome::NoData);
    assert_eq!(c.results("5").await.unwrap(), ResultsOutcome::Computing);
    match c.results("5").await.unwrap() {
        ResultsOutcome::Ready(r) => {
            assert_eq!(r.experiment_id, "5");
            assert_eq!(r.metrics[0].results.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pagination_link_to_another_host_is_refused() {
    let fake = FakeRest::start("pat").await;
    {
        let mut s = fake.state.lock().unwrap();
        s.flags
            .insert("1".into(), vec![serde_json::json!({"key": "f"})]);
        s.flags_next_override = Some("https://evil.example/flags?page_token=2".into());
    }
    let err = client(&fake, "pat").flags("1").await.unwrap_err();
    assert!(matches!(err, RestError::ForeignLink { .. }), "{err}");
    // The token never left for the other host: only the first page was asked for.
    assert_eq!(fake.log().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let fake = FakeRest::start("pat").await;
    fake.state.lock().unwrap().fail_next = 2;
    let c = client(&fake, "pat");
    assert!(c.audiences("1").await.unwrap().is_empty());
    assert_eq!(fake.log().len(), 3);
    // More failures than attempts: the last status is reported with the URL.
    fake.state.lock().unwrap().fail_next = 10;
    let err = c.audiences("1").await.unwrap_err();
    assert!(
        matches!(err, RestError::Status { status: 503, .. }),
        "{err}"
    );
    assert_eq!(fake.log().len(), 3 + 5, "five attempts in all");
}

/// The Flags API writes `next_url` relative to the API base (`/projects/1/flags?...`); the
/// fake also tries the host-relative and absolute forms. Every form reads every page.
#[tokio::test]
async fn next_url_relative_to_the_api_base_or_absolute() {
    use flagbridge_sync::testing::optimizely_rest::LinkStyle;
    for style in [
        LinkStyle::FromApiBase,
        LinkStyle::FromHost,
        LinkStyle::Absolute,
    ] {
        let fake = FakeRest::start("pat").await;
        {
            let mut s = fake.state.lock().unwrap();
            s.flags_link_style = style;
            let flags = (0..5)
                .map(|i| serde_json::json!({"key": format!("flag_{i}")}))
                .collect();
            s.flags.insert("42".into(), flags);
        }
        let flags = client(&fake, "pat").flags("42").await.unwrap();
        assert_eq!(flags.len(), 5, "{style:?}");
        assert_eq!(flags[4].key, "flag_4", "{style:?}");
        let log = fake.log();
        assert_eq!(log.len(), 3, "{style:?}: {log:?}");
        assert!(
            log.iter()
                .all(|l| l.starts_with("/flags/v1/projects/42/flags")),
            "{style:?}: {log:?}"
        );
    }
}

#[tokio::test]
async fn unauthorized_says_check_the_access_token() {
    let fake = FakeRest::start("pat").await;
    let err = client(&fake, "expired").projects().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("HTTP 401: check access_token (expired or revoked?)"),
        "{msg}"
    );
    assert!(msg.contains("/v2/projects"), "{msg}");
}

#[tokio::test]
async fn projects_lists_what_the_token_can_read() {
    let fake = FakeRest::start("pat").await;
    fake.state.lock().unwrap().projects = vec![
        serde_json::json!({"id": 12345678, "name": "Web", "status": "active"}),
        serde_json::json!({"id": "777", "name": "Mobile"}),
    ];
    let projects = client(&fake, "pat").projects().await.unwrap();
    let ids: Vec<&str> = projects.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["12345678", "777"]);
    assert_eq!(projects[0].name.as_deref(), Some("Web"));
}
