//! The REST client against the fake Optimizely REST server.

mod support;

use std::time::Duration;

use flagbridge_sync::config::Secret;
use flagbridge_sync::rest::ratelimit::Window;
use flagbridge_sync::rest::{RestClient, RestError, ResultsOutcome};
use support::optimizely_rest::{experiment, results_body, FakeRest, ResultsAnswer};
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
