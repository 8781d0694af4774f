//! `rediss://`: the fleet store over TLS, against a real `redis-server` that speaks only TLS
//! (certificates in `sync/tests/data/tls/`: a private CA and a server certificate it signed).

use std::path::PathBuf;
use std::time::Duration;

use flagbridge_engine::{DecideOptions, UserContext};
use flagbridge_sync::fleet::{FleetConfig, FleetError};
use flagbridge_sync::testing::{datafile, FakeEventEndpoint, RedisServer};
use flagbridge_sync::{Client, EventStorage};

fn tls(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(file)
}

fn server() -> RedisServer {
    RedisServer::start_tls(&tls("server.pem"), &tls("server-key.pem")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_verifies_the_server_and_the_event_queue_runs_over_tls() {
    let redis = server();
    let fleet = FleetConfig::new(redis.tls_url())
        .key_prefix("tls-test:")
        .tls_ca_file(tls("ca.pem"))
        .connect()
        .await
        .unwrap();
    assert!(fleet.ping().await, "{:?}", fleet.stats());
    // The shared event queue end to end over TLS.
    let endpoint = FakeEventEndpoint::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .datafile(datafile("7"))
        .event_endpoint(endpoint.url())
        .event_storage(EventStorage::File(dir.path().join("events.sqlite")))
        .fleet(fleet)
        .start()
        .await
        .unwrap();
    for i in 0..100 {
        client.decide(
            &UserContext::new(format!("u{i}")),
            "checkout",
            DecideOptions::NONE,
        );
    }
    tokio::time::timeout(Duration::from_secs(30), client.flush())
        .await
        .expect("handed over through TLS");
    assert_eq!(client.event_stats().handed_to_fleet, 100);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while endpoint.distinct_uuids().len() < 100 {
        assert!(std::time::Instant::now() < deadline, "events not posted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client.close().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_server_is_not_trusted() {
    let redis = server();
    // The system's and webpki roots do not know the private CA: the handshake fails, the
    // store counts as unreachable with the reason.
    let fleet = FleetConfig::new(redis.tls_url())
        .key_prefix("tls-test:")
        .connect()
        .await
        .unwrap();
    assert!(!fleet.ping().await);
    let stats = fleet.stats();
    let error = stats.last_error.unwrap_or_default().to_lowercase();
    eprintln!("without the CA: {error}");
    assert!(
        error.contains("certificate") || error.contains("tls") || error.contains("unknown"),
        "{error}"
    );
    // Plain redis:// against the TLS port does not answer either.
    let plain = FleetConfig::new(redis.tls_url().replace("rediss://", "redis://"))
        .connect()
        .await
        .unwrap();
    assert!(!plain.ping().await);
}

#[test]
fn a_ca_file_is_checked_before_connecting() {
    let missing = FleetConfig::new("rediss://127.0.0.1:6380/0")
        .tls_ca_file("/nonexistent/ca.pem")
        .validate()
        .unwrap_err();
    assert!(
        matches!(&missing, FleetError::TlsCaFile { path, .. } if path.ends_with("ca.pem")),
        "{missing:?}"
    );
    assert!(missing
        .to_string()
        .starts_with("store.tls_ca_file: /nonexistent/ca.pem"));
    let not_pem = FleetConfig::new("rediss://127.0.0.1:6380/0")
        .tls_ca_file(tls("README.md"))
        .validate()
        .unwrap_err();
    assert!(
        not_pem.to_string().contains("no PEM certificate"),
        "{not_pem}"
    );
    let plain = FleetConfig::new("redis://127.0.0.1:6379/0")
        .tls_ca_file(tls("ca.pem"))
        .validate()
        .unwrap_err();
    assert!(plain.to_string().contains("rediss://"), "{plain}");
    FleetConfig::new("rediss://127.0.0.1:6380/0")
        .tls_ca_file(tls("ca.pem"))
        .validate()
        .unwrap();
}
