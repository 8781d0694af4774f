//! The Client's datafile refresh against an in-process fake CDN on 127.0.0.1: conditional GET,
//! every fault keeps the last good config and recovers within one interval, cache at start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagbridge_engine::{DecideOptions, UserContext};
use flagbridge_sync::testing::{datafile, datafile_json, CdnFault, FakeCdn, SDK_KEY};
use flagbridge_sync::{
    BuildError, Client, ConfigOrigin, Notification, NotificationType, RefreshError, RefreshOutcome,
    StartError,
};

/// A named way to break the CDN.
type Fault = (&'static str, Box<dyn Fn(&FakeCdn)>);

const INTERVAL: Duration = Duration::from_secs(60);

async fn cdn(revision: &str) -> FakeCdn {
    let cdn = FakeCdn::start().await.unwrap();
    cdn.set_datafile(SDK_KEY, datafile(revision));
    cdn
}

async fn client(cdn: &FakeCdn) -> Client {
    Client::builder()
        .sdk_key(SDK_KEY)
        .datafile_base_url(cdn.base_url())
        .events_enabled(false)
        .start()
        .await
        .unwrap()
}

/// The `color` variable of the `pro` user shows which revision decided.
fn color(client: &Client) -> String {
    let user = UserContext::new("u1").with_attribute("plan", "pro");
    let decision = client.decide(&user, "checkout", DecideOptions::NONE);
    assert_eq!(decision.variation_key.as_deref(), Some("treatment"));
    decision.variables["color"].as_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn serves_the_cdn_datafile_and_polls_with_conditional_get() {
    let cdn = cdn("100").await;
    let client = client(&cdn).await;
    assert_eq!(client.revision(), "100");
    assert_eq!(client.config_origin(), ConfigOrigin::Source);
    assert_eq!(color(&client), "blue-100");

    assert_eq!(
        client.refresh_now().await.unwrap(),
        RefreshOutcome::NotModified
    );
    let headers = cdn.last_request_headers().unwrap();
    assert!(headers.get("if-modified-since").is_some(), "{headers:?}");
    assert!(headers.get("if-none-match").is_some(), "{headers:?}");
    assert_eq!(cdn.not_modified_count(), 1);

    // Without ETag, Last-Modified alone still gives 304.
    cdn.send_etag(false);
    cdn.set_datafile(SDK_KEY, datafile("101"));
    assert_eq!(
        client.refresh_now().await.unwrap(),
        RefreshOutcome::Applied {
            revision: "101".into()
        }
    );
    assert_eq!(
        client.refresh_now().await.unwrap(),
        RefreshOutcome::NotModified
    );
    assert!(cdn
        .last_request_headers()
        .unwrap()
        .get("if-none-match")
        .is_none());

    // The interval: nothing before 60 s, the new revision right after.
    cdn.set_datafile(SDK_KEY, datafile("102"));
    tokio::time::sleep(INTERVAL - Duration::from_secs(2)).await;
    assert_eq!(color(&client), "blue-101");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(color(&client), "blue-102");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn each_fault_keeps_the_last_good_config_and_recovers_within_one_interval() {
    let faults: Vec<Fault> = vec![
        (
            "HTTP 500",
            Box::new(|c| c.set_fault(Some(CdnFault::Status(500)))),
        ),
        ("hang", Box::new(|c| c.set_fault(Some(CdnFault::Hang)))),
        (
            "truncated JSON",
            Box::new(|c| c.set_fault(Some(CdnFault::Truncated))),
        ),
        (
            "unsupported version",
            Box::new(|c| {
                let mut d = datafile_json("999");
                d["version"] = "1".into();
                c.set_datafile(SDK_KEY, d.to_string());
            }),
        ),
        (
            "older revision",
            Box::new(|c| c.set_datafile(SDK_KEY, datafile("5"))),
        ),
    ];
    for (name, apply) in faults {
        let cdn = cdn("10").await;
        let client = client(&cdn).await;
        cdn.set_datafile(SDK_KEY, datafile("11"));
        apply(&cdn);
        let before = cdn.requests();
        tokio::time::sleep(INTERVAL * 4).await;
        assert!(
            cdn.requests() > before + 4,
            "{name}: retried with backoff ({} requests)",
            cdn.requests() - before
        );
        assert_eq!(client.revision(), "10", "{name}");
        assert_eq!(color(&client), "blue-10", "{name}: decisions keep working");

        cdn.set_fault(None);
        cdn.set_datafile(SDK_KEY, datafile("12"));
        tokio::time::sleep(INTERVAL + Duration::from_secs(16)).await;
        assert_eq!(
            color(&client),
            "blue-12",
            "{name}: recovered within one interval"
        );
        client.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_now_reports_why_a_datafile_was_refused() {
    let cdn = cdn("20").await;
    let client = client(&cdn).await;
    cdn.set_fault(Some(CdnFault::Status(503)));
    let err = client.refresh_now().await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    cdn.set_fault(Some(CdnFault::Truncated));
    assert!(matches!(
        client.refresh_now().await,
        Err(RefreshError::InvalidDatafile(_))
    ));
    cdn.set_fault(None);
    cdn.set_datafile(SDK_KEY, datafile("19"));
    assert!(matches!(
        client.refresh_now().await,
        Err(RefreshError::OlderRevision { .. })
    ));
    assert_eq!(client.revision(), "20");
    client.stop_polling().await;
    assert!(matches!(
        client.refresh_now().await,
        Err(RefreshError::Stopped)
    ));
    let requests = cdn.requests();
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(cdn.requests(), requests, "no polling after stop");
    assert_eq!(color(&client), "blue-20", "still serving");
    client.close().await;
    assert!(matches!(
        client.refresh_now().await,
        Err(RefreshError::Stopped)
    ));
}

#[tokio::test(start_paused = true)]
async fn config_update_notification_only_for_a_new_revision() {
    let cdn = cdn("30").await;
    let client = client(&cdn).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    client
        .notification_center()
        .add_listener(NotificationType::ConfigUpdate, move |n| {
            if let Notification::ConfigUpdate(update) = n {
                log.lock().unwrap().push(update.revision.clone());
                let _ = tx.send(());
            }
        });
    let mut same = datafile_json("30");
    same["anonymizeIP"] = false.into(); // new content, same revision: not applied
    cdn.set_datafile(SDK_KEY, same.to_string());
    assert_eq!(
        client.refresh_now().await.unwrap(),
        RefreshOutcome::SameRevision
    );
    cdn.set_datafile(SDK_KEY, datafile("31"));
    assert_eq!(
        client.refresh_now().await.unwrap(),
        RefreshOutcome::Applied {
            revision: "31".into()
        }
    );
    rx.recv().await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["31".to_owned()]);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn authenticated_source_sends_the_bearer_token() {
    let cdn = cdn("40").await;
    cdn.require_token("s3cret");
    let client = Client::builder()
        .authenticated(SDK_KEY, "s3cret")
        .datafile_base_url(cdn.base_url())
        .events_enabled(false)
        .start()
        .await
        .unwrap();
    assert_eq!(client.revision(), "40");
    let bad = Client::builder()
        .authenticated(SDK_KEY, "wrong")
        .datafile_base_url(cdn.base_url())
        .events_enabled(false)
        .start_timeout(Duration::from_secs(3))
        .start()
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("403"), "{bad}");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn start_without_cdn_fails_clearly_or_serves_the_cache_and_says_so() {
    let cdn = cdn("50").await;
    let dir = std::env::temp_dir().join(format!("fb-client-cache-{}", std::process::id()));
    let cache = dir.join("datafile.json");
    let _ = std::fs::remove_dir_all(&dir);

    let builder = || {
        Client::builder()
            .sdk_key(SDK_KEY)
            .datafile_base_url(cdn.base_url())
            .events_enabled(false)
            .start_timeout(Duration::from_secs(5))
    };
    // A good start writes the cache.
    let first = builder().cache_file(&cache).start().await.unwrap();
    first.close().await;
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), datafile("50"));

    cdn.set_fault(Some(CdnFault::Hang));
    // No cache: a clear error after the start timeout.
    let err = builder().start().await.unwrap_err();
    assert!(matches!(err, StartError::NoConfig { .. }), "{err}");
    assert!(
        err.to_string().contains("no cache file configured"),
        "{err}"
    );
    // With the cache: served from it, marked as such, and the poller recovers later.
    let client = builder().cache_file(&cache).start().await.unwrap();
    assert_eq!(client.config_origin(), ConfigOrigin::Cache);
    assert_eq!(color(&client), "blue-50");
    cdn.set_fault(None);
    cdn.set_datafile(SDK_KEY, datafile("51"));
    tokio::time::sleep(INTERVAL + Duration::from_secs(16)).await;
    assert_eq!(color(&client), "blue-51");
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), datafile("51"));
    client.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn static_and_file_sources_and_settings_validation() {
    let client = Client::builder()
        .datafile(datafile("60"))
        .events_enabled(false)
        .start()
        .await
        .unwrap();
    assert_eq!(color(&client), "blue-60");
    assert!(matches!(
        client.refresh_now().await,
        Err(RefreshError::Stopped)
    ));
    let err = Client::builder().datafile("{").start().await.unwrap_err();
    assert!(matches!(err, StartError::InvalidDatafile(_)), "{err}");

    let path = std::env::temp_dir().join(format!("fb-file-source-{}.json", std::process::id()));
    std::fs::write(&path, datafile("61")).unwrap();
    let client = Client::builder()
        .datafile_file(&path)
        .events_enabled(false)
        .start()
        .await
        .unwrap();
    assert_eq!(color(&client), "blue-61");
    std::fs::write(&path, datafile("62")).unwrap();
    assert_eq!(
        client.refresh_now().await.unwrap(),
        RefreshOutcome::Applied {
            revision: "62".into()
        }
    );
    client.close().await;
    std::fs::remove_file(&path).unwrap();

    let err = Client::builder()
        .sdk_key("K")
        .polling_interval(Duration::from_millis(500))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StartError::Build(BuildError::PollingIntervalTooShort { .. })
        ),
        "{err}"
    );
    let err = Client::builder().start().await.unwrap_err();
    assert!(
        matches!(err, StartError::Build(BuildError::NoSource)),
        "{err}"
    );
}
