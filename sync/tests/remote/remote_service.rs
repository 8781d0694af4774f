//! The CMAB service, the ODP manager and the client's async decide against the in-process fake
//! (`testing::FakeRemote`, 127.0.0.1): one test per cache and option rule of the
//! JS SDK 6.6.1's CMAB service and ODP segment manager, counted through the fake's request log.

use std::time::Duration;

use flagbridge_engine::{
    AsyncKeys, CmabRequest, DecideOption, DecideOptions, Decider, ProjectConfig, UserContext,
};
use flagbridge_sync::remote::{
    CmabError, CmabService, OdpError, OdpEventError, OdpManager, SegmentOption,
};
use flagbridge_sync::testing::{FakeEventEndpoint, FakeRemote};
use flagbridge_sync::{Client, EventStorage};
use serde_json::{json, Value};

fn datafile_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datafile-fixtures/remote/cmab_odp.json"
    );
    std::fs::read_to_string(path).expect("fixture")
}

fn config() -> ProjectConfig {
    ProjectConfig::from_slice(datafile_text().as_bytes()).expect("valid")
}

async fn fake() -> FakeRemote {
    let json: Value = serde_json::from_str(&datafile_text()).expect("json");
    FakeRemote::start(&json, false).await.expect("fake")
}

fn service(fake: &FakeRemote) -> CmabService {
    CmabService::builder()
        .prediction_endpoint_template(format!("{}/predict/%s", fake.url()))
        .build()
        .expect("service")
}

fn user(id: &str, age: i64) -> UserContext {
    let mut u = UserContext::new(id);
    u.set_attribute("gender", "f");
    u.set_attribute("age", age);
    u
}

/// The prediction request of `f_two_cmab`'s second rule (`attributeIds: []`, 100 % traffic)
/// or, with `age >= 18`, of its first rule (`attributeIds: ["101"]`).
fn request<'a, 'u>(config: &'a ProjectConfig, u: &'u UserContext) -> CmabRequest<'a, 'u> {
    let mut call =
        Decider::new(config).start_async(u, AsyncKeys::One("f_two_cmab"), DecideOptions::NONE);
    call.pending(u).pop().expect("a prediction is needed")
}

fn cmab_requests(fake: &FakeRemote) -> Vec<Value> {
    fake.log()
        .into_iter()
        .filter(|r| r["kind"] == "cmab")
        .collect()
}

const NONE: DecideOptions = DecideOptions::NONE;

#[tokio::test]
async fn miss_hit_attribute_change_hit() {
    let fake = fake().await;
    let svc = service(&fake);
    let config = config();
    let (a30, a31) = (user("u1", 30), user("u1", 31));
    let first = svc
        .get_decision(&request(&config, &a30), NONE)
        .await
        .expect("ok");
    let again = svc
        .get_decision(&request(&config, &a30), NONE)
        .await
        .expect("ok");
    assert_eq!(first, again, "a hit returns the cached uuid");
    assert_eq!(cmab_requests(&fake).len(), 1);
    let changed = svc
        .get_decision(&request(&config, &a31), NONE)
        .await
        .expect("ok");
    assert_ne!(
        changed.cmab_uuid, first.cmab_uuid,
        "another attribute hash refetches"
    );
    let hit = svc
        .get_decision(&request(&config, &a31), NONE)
        .await
        .expect("ok");
    assert_eq!(hit, changed);
    assert_eq!(cmab_requests(&fake).len(), 2);
    let body = &cmab_requests(&fake)[1]["body"]["instances"][0];
    assert_eq!(
        body["attributes"],
        json!([{"id": "101", "value": 31, "type": "custom_attribute"}])
    );
    assert_eq!(body["cmabUUID"], json!(changed.cmab_uuid));
}

#[tokio::test]
async fn ignore_does_not_save_and_wins_over_reset() {
    let fake = fake().await;
    let svc = service(&fake);
    let config = config();
    let (u1, u2) = (user("u1", 30), user("u2", 30));
    let d1 = svc
        .get_decision(&request(&config, &u1), NONE)
        .await
        .expect("ok");
    let d2 = svc
        .get_decision(&request(&config, &u2), NONE)
        .await
        .expect("ok");
    let both = DecideOptions::NONE
        .with(DecideOption::IgnoreCmabCache)
        .with(DecideOption::ResetCmabCache);
    let ignored = svc
        .get_decision(&request(&config, &u1), both)
        .await
        .expect("ok");
    assert_ne!(ignored.cmab_uuid, d1.cmab_uuid, "fetched");
    // Not saved, and RESET was not applied: both earlier entries still answer.
    assert_eq!(
        svc.get_decision(&request(&config, &u1), NONE)
            .await
            .expect("ok"),
        d1
    );
    assert_eq!(
        svc.get_decision(&request(&config, &u2), NONE)
            .await
            .expect("ok"),
        d2
    );
    assert_eq!(cmab_requests(&fake).len(), 3);
}

#[tokio::test]
async fn reset_clears_everyone_and_invalidate_only_that_user() {
    let fake = fake().await;
    let svc = service(&fake);
    let config = config();
    let (u1, u2) = (user("u1", 30), user("u2", 30));
    let d1 = svc
        .get_decision(&request(&config, &u1), NONE)
        .await
        .expect("ok");
    let d2 = svc
        .get_decision(&request(&config, &u2), NONE)
        .await
        .expect("ok");
    let invalidate = NONE.with(DecideOption::InvalidateUserCmabCache);
    let d1b = svc
        .get_decision(&request(&config, &u1), invalidate)
        .await
        .expect("ok");
    assert_ne!(d1b.cmab_uuid, d1.cmab_uuid);
    assert_eq!(
        svc.get_decision(&request(&config, &u2), NONE)
            .await
            .expect("ok"),
        d2
    );
    let reset = NONE.with(DecideOption::ResetCmabCache);
    let d1c = svc
        .get_decision(&request(&config, &u1), reset)
        .await
        .expect("ok");
    assert_ne!(d1c.cmab_uuid, d1b.cmab_uuid);
    let d2b = svc
        .get_decision(&request(&config, &u2), NONE)
        .await
        .expect("ok");
    assert_ne!(d2b.cmab_uuid, d2.cmab_uuid, "RESET emptied u2's entry too");
    assert_eq!(cmab_requests(&fake).len(), 5);
}

#[tokio::test]
async fn concurrent_calls_for_one_user_and_rule_make_one_request() {
    let fake = fake().await;
    let svc = service(&fake);
    let config = config();
    let u = user("u1", 30);
    let requests: Vec<CmabRequest<'_, '_>> = (0..5).map(|_| request(&config, &u)).collect();
    let results = futures_join(requests.iter().map(|r| svc.get_decision(r, NONE))).await;
    let uuids: std::collections::BTreeSet<String> = results
        .into_iter()
        .map(|r| r.expect("ok").cmab_uuid)
        .collect();
    assert_eq!(uuids.len(), 1);
    assert_eq!(cmab_requests(&fake).len(), 1);
    // With IGNORE_CMAB_CACHE every call fetches.
    let ignore = NONE.with(DecideOption::IgnoreCmabCache);
    let results = futures_join(requests.iter().map(|r| svc.get_decision(r, ignore))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(cmab_requests(&fake).len(), 6);
}

/// Polls the futures together on this task.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, r) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *r = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

#[tokio::test]
async fn one_retry_with_the_same_uuid_and_failures_are_not_cached() {
    let fake = fake().await;
    let svc = service(&fake);
    let config = config();
    let flaky = user("cmab_flaky_1", 30);
    let d = svc
        .get_decision(&request(&config, &flaky), NONE)
        .await
        .expect("the retry succeeds");
    let log = cmab_requests(&fake);
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["status"], 500);
    assert_eq!(log[0]["body"], log[1]["body"], "same body, same uuid");
    assert_eq!(
        log[1]["body"]["instances"][0]["cmabUUID"],
        json!(d.cmab_uuid)
    );
    let broken = user("cmab_err500_1", 30);
    let err = svc.get_decision(&request(&config, &broken), NONE).await;
    assert!(matches!(err, Err(CmabError::Status(500))), "{err:?}");
    assert_eq!(cmab_requests(&fake).len(), 4, "two attempts");
    let err = svc.get_decision(&request(&config, &broken), NONE).await;
    assert!(err.is_err());
    assert_eq!(cmab_requests(&fake).len(), 6, "nothing was cached");
    let bad = user("cmab_badjson_1", 30);
    let err = svc.get_decision(&request(&config, &bad), NONE).await;
    assert!(matches!(err, Err(CmabError::InvalidResponse)), "{err:?}");
}

#[tokio::test]
async fn unknown_attribute_id_fails_without_a_request() {
    let fake = fake().await;
    let svc = service(&fake);
    let config = config();
    let u = user("u1", 30);
    let mut call = Decider::new(&config).start_async(&u, AsyncKeys::One("f_bad_attr"), NONE);
    let r = call.pending(&u).pop().expect("asks");
    let err = svc.get_decision(&r, NONE).await;
    assert!(
        matches!(err, Err(CmabError::UnknownAttribute(_))),
        "{err:?}"
    );
    assert!(cmab_requests(&fake).is_empty());
}

#[tokio::test]
async fn a_refused_connection_and_a_silent_server_fail_within_the_timeout() {
    // A listener that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let config = config();
    let u = user("u1", 30);
    let svc = CmabService::builder()
        .prediction_endpoint_template(format!("http://{addr}/predict/%s"))
        .request_timeout(Duration::from_millis(200))
        .retries(1, Duration::from_millis(10))
        .build()
        .expect("service");
    let err = svc.get_decision(&request(&config, &u), NONE).await;
    assert!(
        matches!(err, Err(CmabError::Transport(ref e)) if e.is_timeout()),
        "{err:?}"
    );
    // A closed port.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let svc = CmabService::builder()
        .prediction_endpoint_template(format!("http://127.0.0.1:{port}/predict/%s"))
        .retries(1, Duration::from_millis(10))
        .build()
        .expect("service");
    let err = svc.get_decision(&request(&config, &u), NONE).await;
    assert!(matches!(err, Err(CmabError::Transport(_))), "{err:?}");
}

fn odp(fake: &FakeRemote) -> OdpManager {
    OdpManager::builder().host(fake.url()).build().expect("odp")
}

fn segment_requests(fake: &FakeRemote) -> Vec<Value> {
    fake.log()
        .into_iter()
        .filter(|r| r["kind"] == "odp_segments")
        .collect()
}

#[tokio::test]
async fn segments_are_cached_per_user_key_and_the_options_apply() {
    let fake = fake().await;
    let odp = odp(&fake);
    let config = config();
    let first = odp
        .fetch_qualified_segments(&config, "odp-u1", &[])
        .await
        .expect("ok");
    let again = odp
        .fetch_qualified_segments(&config, "odp-u1", &[])
        .await
        .expect("ok");
    assert_eq!(first, again);
    assert_eq!(segment_requests(&fake).len(), 1);
    let log = segment_requests(&fake);
    assert_eq!(log[0]["headers"]["x-api-key"], "fb-test-key");
    assert_eq!(
        log[0]["parsed"]["subset"],
        json!(["seg-c", "seg-a", "seg-b", "seg-d"])
    );
    odp.fetch_qualified_segments(&config, "odp-u1", &[SegmentOption::IgnoreCache])
        .await
        .expect("ok");
    odp.fetch_qualified_segments(&config, "odp-u1", &[])
        .await
        .expect("ok");
    assert_eq!(
        segment_requests(&fake).len(),
        2,
        "IGNORE neither read nor filled the cache"
    );
    odp.fetch_qualified_segments(&config, "odp-u1", &[SegmentOption::ResetCache])
        .await
        .expect("ok");
    assert_eq!(segment_requests(&fake).len(), 3);
    odp.fetch_qualified_segments(&config, "vuid_abc", &[])
        .await
        .expect("ok");
    assert_eq!(segment_requests(&fake)[3]["parsed"]["userKey"], "vuid");
    let err = odp
        .fetch_qualified_segments(&config, "odp_invalid_id", &[])
        .await;
    assert!(matches!(err, Err(OdpError::InvalidIdentifier)), "{err:?}");
    let err = odp
        .fetch_qualified_segments(&config, "odp_err500", &[])
        .await;
    assert!(matches!(err, Err(OdpError::Network)), "{err:?}");
}

#[tokio::test]
async fn without_an_integration_nothing_is_asked_or_sent() {
    let fake = fake().await;
    let odp = odp(&fake);
    let mut raw: Value = serde_json::from_str(&datafile_text()).expect("json");
    raw["integrations"] = json!([]);
    let plain = ProjectConfig::from_slice(raw.to_string().as_bytes()).expect("valid");
    let err = odp.fetch_qualified_segments(&plain, "u", &[]).await;
    assert!(matches!(err, Err(OdpError::NotIntegrated)));
    let sent = odp.send_event(
        &plain,
        "a",
        None,
        vec![("fs_user_id".into(), json!("u"))],
        vec![],
    );
    assert_eq!(sent, Err(OdpEventError::NotIntegrated));
    assert!(fake.log().is_empty());
}

#[tokio::test]
async fn events_go_in_batches_with_the_api_key() {
    let fake = fake().await;
    let odp = OdpManager::builder()
        .host(fake.url())
        .event_batch_size(2)
        .build()
        .expect("odp");
    let config = config();
    for i in 0..3 {
        odp.send_event(
            &config,
            "view",
            None,
            vec![("fs-user-id".into(), json!(format!("u{i}")))],
            vec![],
        )
        .expect("queued");
    }
    assert!(odp.batch_full());
    assert_eq!(odp.flush().await, 3);
    let sent: Vec<Value> = fake
        .log()
        .into_iter()
        .filter(|r| r["kind"] == "odp_events")
        .collect();
    assert_eq!(sent.len(), 2, "3 events in batches of 2");
    assert_eq!(sent[0]["headers"]["x-api-key"], "fb-test-key");
    assert_eq!(
        sent[0]["body"][1]["identifiers"],
        json!({"fs_user_id": "u1"})
    );
    assert_eq!(sent[0]["body"][0]["data"]["data_source"], "javascript-sdk");
}

#[tokio::test]
async fn client_async_decide_sends_the_cmab_uuid_and_sync_decide_skips_cmab() {
    let fake = fake().await;
    let endpoint = FakeEventEndpoint::start().await.expect("endpoint");
    let client = Client::builder()
        .datafile(datafile_text())
        .event_endpoint(endpoint.url())
        .event_storage(EventStorage::Memory)
        .cmab(
            CmabService::builder()
                .prediction_endpoint_template(format!("{}/predict/%s", fake.url())),
        )
        .odp(OdpManager::builder().host(fake.url()))
        .start()
        .await
        .expect("client");
    // u5 is in f_two_cmab's second rule (100 % traffic) when the first rule's audience fails.
    let mut ctx = client.create_user_context("u5");
    ctx.set_attribute("age", 17);
    let sync = ctx.decide("f_two_cmab", NONE.with(DecideOption::IncludeReasons));
    assert!(sync
        .reasons
        .iter()
        .any(|r| r == "CMAB is not supported in sync mode."));
    assert_eq!(sync.rule_key.as_deref(), Some("r2_everyone"));
    let d = ctx.decide_async("f_two_cmab", NONE).await;
    assert_eq!(d.rule_key.as_deref(), Some("cmab_second"));
    let again = ctx.decide_for_keys_async(&["f_two_cmab"], NONE).await;
    assert_eq!(again[0].variation_key, d.variation_key);
    assert_eq!(
        cmab_requests(&fake).len(),
        1,
        "the second decide hit the cache"
    );
    let uuid = cmab_requests(&fake)[0]["body"]["instances"][0]["cmabUUID"].clone();
    assert!(ctx.fetch_qualified_segments(&[]).await);
    client.flush().await;
    let decisions: Vec<Value> = endpoint
        .visitors()
        .iter()
        .flat_map(|v| {
            v["snapshots"][0]["decisions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|d| d["metadata"]["rule_key"] == "cmab_second")
        .collect();
    assert_eq!(decisions.len(), 2);
    assert!(decisions.iter().all(|d| d["metadata"]["cmab_uuid"] == uuid));
    // A failed prediction: error decision, reasons without INCLUDE_REASONS, no impression.
    let mut broken = client.create_user_context("cmab_err500_9");
    broken.set_attribute("age", 17);
    let e = broken.decide_async("f_two_cmab", NONE).await;
    assert!(!e.enabled);
    assert!(e.variables.is_empty());
    assert_eq!(
        e.reasons.last().map(String::as_str),
        Some("Failed to fetch CMAB data for experiment cmab_second.")
    );
    client.close().await;
}
