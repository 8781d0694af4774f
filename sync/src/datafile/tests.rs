//! Poller and start-up behaviour over an in-memory transport, with tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use super::poller::{PollerSettings, RefreshOutcome};
use super::source::{DatafileTransport, FetchOutcome, Validators};
use super::*;
use crate::error::{DatafileErrorBox, FetchError};
use crate::BoxFuture;

/// A stand-in for the engine's config: `{"version": "4", "revision": "N"}`.
#[derive(Debug)]
struct TestConfig {
    revision: String,
}

impl Compiled for TestConfig {
    fn compile(text: &str) -> Result<Self, DatafileErrorBox> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        if value["version"] != "4" {
            return Err(format!("unsupported datafile version {}", value["version"]).into());
        }
        let revision = value["revision"].as_str().ok_or("no revision")?.to_owned();
        Ok(TestConfig { revision })
    }

    fn revision(&self) -> &str {
        &self.revision
    }
}

#[derive(Clone, Debug, PartialEq)]
enum MemFault {
    Status(u16),
    Hang,
}

#[derive(Default)]
struct MemState {
    body: String,
    version: u64,
    fault: Option<MemFault>,
    fetches: Vec<Instant>,
}

#[derive(Clone, Default)]
struct MemTransport(Arc<Mutex<MemState>>);

impl MemTransport {
    fn set(&self, body: &str) {
        let mut s = self.0.lock().unwrap();
        s.body = body.to_owned();
        s.version += 1;
    }
    fn fault(&self, fault: Option<MemFault>) {
        self.0.lock().unwrap().fault = fault;
    }
    fn fetches(&self) -> Vec<Instant> {
        self.0.lock().unwrap().fetches.clone()
    }
}

impl DatafileTransport for MemTransport {
    fn fetch<'a>(
        &'a self,
        validators: &'a Validators,
    ) -> BoxFuture<'a, Result<FetchOutcome, FetchError>> {
        Box::pin(async move {
            let (fault, outcome) = {
                let mut s = self.0.lock().unwrap();
                s.fetches.push(Instant::now());
                let etag = format!("v{}", s.version);
                let outcome = if validators.etag.as_deref() == Some(etag.as_str()) {
                    FetchOutcome::NotModified
                } else {
                    FetchOutcome::Updated {
                        body: s.body.clone(),
                        validators: Validators {
                            last_modified: None,
                            etag: Some(etag),
                        },
                    }
                };
                (s.fault.clone(), outcome)
            };
            match fault {
                Some(MemFault::Status(status)) => Err(FetchError::Status {
                    url: "mem".into(),
                    status,
                }),
                Some(MemFault::Hang) => std::future::pending().await,
                None => Ok(outcome),
            }
        })
    }
}

fn datafile(revision: &str) -> String {
    format!(r#"{{"version":"4","revision":"{revision}"}}"#)
}

/// A named way to break the transport.
type Fault = (&'static str, Box<dyn Fn(&MemTransport)>);

const INTERVAL: Duration = Duration::from_secs(60);

fn settings(cache_path: Option<PathBuf>) -> StartSettings {
    StartSettings {
        poller: PollerSettings {
            interval: INTERVAL,
            backoff_base: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(10),
            cache_path,
            source_desc: "mem".into(),
        },
        start_timeout: Duration::from_secs(5),
    }
}

struct Running {
    store: Arc<ArcSwap<TestConfig>>,
    handle: PollerHandle,
    applied: Arc<Mutex<Vec<String>>>,
}

async fn start(transport: &MemTransport, cache: Option<PathBuf>) -> Result<Running, StartError> {
    let settings = settings(cache);
    let started = first_config::<TestConfig>(transport, &settings).await?;
    let store = Arc::new(ArcSwap::from_pointee(started.config));
    let applied = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&applied);
    let handle = PollerHandle::spawn(
        Box::new(transport.clone()),
        Arc::clone(&store),
        started.validators,
        started.failures,
        settings.poller,
        Box::new(move |c: &Arc<TestConfig>| log.lock().unwrap().push(c.revision.clone())),
    );
    Ok(Running {
        store,
        handle,
        applied,
    })
}

fn revision(r: &Running) -> String {
    r.store.load().revision.clone()
}

#[tokio::test(start_paused = true)]
async fn polls_on_the_interval_and_applies_a_new_revision() {
    let t = MemTransport::default();
    t.set(&datafile("1"));
    let r = start(&t, None).await.unwrap();
    assert_eq!(revision(&r), "1");
    let t0 = Instant::now();
    t.set(&datafile("2"));
    tokio::time::sleep(INTERVAL - Duration::from_secs(1)).await;
    assert_eq!(revision(&r), "1", "no poll before the interval");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(revision(&r), "2");
    assert_eq!(*r.applied.lock().unwrap(), vec!["2".to_owned()]);
    let fetches = t.fetches();
    assert_eq!(fetches.len(), 2);
    assert_eq!(fetches[1] - t0, INTERVAL);
    r.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn not_modified_and_same_revision_keep_the_config_without_notification() {
    let t = MemTransport::default();
    t.set(&datafile("1"));
    let r = start(&t, None).await.unwrap();
    assert_eq!(
        r.handle.refresh_now().await.unwrap(),
        RefreshOutcome::NotModified
    );
    t.set(&datafile("1")); // new validators, same revision
    assert_eq!(
        r.handle.refresh_now().await.unwrap(),
        RefreshOutcome::SameRevision
    );
    assert!(r.applied.lock().unwrap().is_empty());
    t.set(&datafile("3"));
    assert_eq!(
        r.handle.refresh_now().await.unwrap(),
        RefreshOutcome::Applied {
            revision: "3".into()
        }
    );
    r.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn faults_keep_the_last_good_config_and_recovery_comes_within_one_interval() {
    // (what the fault looks like, how to set it)
    let faults: Vec<Fault> = vec![
        ("500", Box::new(|t| t.fault(Some(MemFault::Status(500))))),
        ("hang", Box::new(|t| t.fault(Some(MemFault::Hang)))),
        ("truncated", Box::new(|t| t.set(&datafile("9")[..10]))),
        (
            "unsupported version",
            Box::new(|t| t.set(r#"{"version":"1","revision":"9"}"#)),
        ),
        ("older revision", Box::new(|t| t.set(&datafile("1")))),
    ];
    for (name, apply) in faults {
        let t = MemTransport::default();
        t.set(&datafile("5"));
        let r = start(&t, None).await.unwrap();
        apply(&t);
        // Several failing polls, with backoff; the config stays.
        tokio::time::sleep(INTERVAL * 5).await;
        assert_eq!(revision(&r), "5", "{name}");
        let during = t.fetches().len();
        assert!(
            during >= 6,
            "{name}: backoff retries sooner than the interval ({during} fetches)"
        );
        // The fault ends: the next poll (at most one interval later) applies the new datafile.
        t.fault(None);
        t.set(&datafile("6"));
        tokio::time::sleep(INTERVAL + Duration::from_secs(11)).await;
        assert_eq!(revision(&r), "6", "{name}: recovered within one interval");
        // Back to the normal interval after the success.
        let after = t.fetches().len();
        tokio::time::sleep(INTERVAL * 3).await;
        let extra = t.fetches().len() - after;
        assert!(
            (2..=3).contains(&extra),
            "{name}: {extra} fetches in three intervals"
        );
        r.handle.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn start_fails_clearly_without_cache_and_serves_cache_when_present() {
    let t = MemTransport::default();
    t.fault(Some(MemFault::Status(503)));
    let begun = Instant::now();
    let err = start(&t, None).await.err().unwrap();
    assert!(matches!(err, StartError::NoConfig { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert!(Instant::now() - begun <= Duration::from_secs(5));
    assert!(t.fetches().len() >= 2, "retried during start-up");

    let dir = std::env::temp_dir().join(format!("fb-start-cache-{}", std::process::id()));
    let path = dir.join("datafile.json");
    // A good start writes the cache.
    let good = MemTransport::default();
    good.set(&datafile("7"));
    let r = start(&good, Some(path.clone())).await.unwrap();
    r.handle.stop().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), datafile("7"));
    // A failing start serves it, and the poller recovers when the source comes back.
    t.fault(Some(MemFault::Hang));
    t.set(&datafile("8"));
    let r = start(&t, Some(path.clone())).await.unwrap();
    assert_eq!(revision(&r), "7");
    t.fault(None);
    tokio::time::sleep(INTERVAL + Duration::from_secs(11)).await;
    assert_eq!(revision(&r), "8");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), datafile("8"));
    r.handle.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn refresh_now_reports_errors_and_stop_ends_the_loop() {
    let t = MemTransport::default();
    t.set(&datafile("1"));
    let r = start(&t, None).await.unwrap();
    t.set("{not json");
    assert!(matches!(
        r.handle.refresh_now().await,
        Err(RefreshError::InvalidDatafile(_))
    ));
    t.set(&datafile("0"));
    assert!(matches!(
        r.handle.refresh_now().await,
        Err(RefreshError::OlderRevision { .. })
    ));
    r.handle.stop().await;
    assert!(matches!(
        r.handle.refresh_now().await,
        Err(RefreshError::Stopped)
    ));
    let fetches = t.fetches().len();
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(t.fetches().len(), fetches, "no polling after stop");
}
