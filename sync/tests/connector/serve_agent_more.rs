//! Agent compatibility beyond decide/track: lenient inputs, JSON error bodies, the webhook's
//! order of checks, `/v1/activate`, `/v1/override`, `/v1/lookup` + `/v1/save`, CORS; Agent's
//! example scripts replayed request for request.

use flagbridge_sync::connector::config::agent_api::{CorsSection, UserProfileSection};
use flagbridge_sync::connector::config::{Config, Secret};
use flagbridge_sync::connector::serve::{self, webhook, RuntimeOptions, ServeHandle};
use flagbridge_sync::testing::datafile_json;
use serde_json::{json, Value};

const SECRET: &str = "whsec";

struct Server {
    handle: ServeHandle,
    base: String,
    http: reqwest::Client,
    dir: std::path::PathBuf,
}

async fn start(tag: &str, edit: impl FnOnce(&mut Config)) -> Server {
    let dir = std::env::temp_dir().join(format!("fb-agent-more-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    start_in(dir, edit).await
}

/// Starts on `dir` as it is (a restart keeps what the last run left there).
async fn start_in(dir: std::path::PathBuf, edit: impl FnOnce(&mut Config)) -> Server {
    let text: &'static str = Box::leak(datafile_json("1").to_string().into_boxed_str());
    let mut config = Config::embedded_default(text, "key").unwrap();
    config.state_dir = dir.clone();
    config.server.max_body_bytes = 2048;
    config.projects[0].project_id = Some("13001".into());
    config.projects[0].webhook_secret = Some(Secret::new(SECRET));
    edit(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve::start(config, listener, RuntimeOptions::default())
        .await
        .unwrap();
    let base = format!("http://{}", handle.local_addr());
    Server {
        handle,
        base,
        http: reqwest::Client::new(),
        dir,
    }
}

impl Server {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.handle.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn lenient_inputs_and_json_errors() {
    let s = start("lenient", |_| {}).await;
    // Array and object attribute values are ignored; the rest still counts.
    let (status, d) = s
        .post(
            "/v1/decide?keys=checkout",
            &json!({"userId": "u", "userAttributes": {"plan": "pro", "tags": ["a"], "o": {"k": null}}}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["ruleKey"], "checkout_test", "plan=pro still targets: {d}");
    assert_eq!(d["userContext"]["attributes"]["tags"], json!(["a"]));
    // An empty user id decides (as the JS SDK does).
    let (status, d) = s
        .post("/v1/decide?keys=banner", &json!({"userId": ""}))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["enabled"], true);
    // `?keys=a,b` is the one key "a,b" (Agent reads repeated keys, not commas).
    let (_, d) = s
        .post("/v1/decide?keys=banner,checkout", &json!({"userId": "u"}))
        .await;
    assert_eq!(d["flagKey"], "banner,checkout", "{d}");
    assert_eq!(d["enabled"], false);
    let (_, d) = s
        .post(
            "/v1/decide?keys=banner&keys=checkout",
            &json!({"userId": "u"}),
        )
        .await;
    assert_eq!(d.as_array().map(Vec::len), Some(2), "{d}");
    // fetchSegments: an unknown option is refused; without ODP configured the fetch finds
    // nothing and the decide goes on (as the SDK without an ODP manager).
    let (status, e) = s
        .post(
            "/v1/decide",
            &json!({"userId": "u", "fetchSegments": true, "fetchSegmentsOptions": ["NOPE"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("fetchSegmentsOptions"),
        "{e}"
    );
    for fetch in [true, false] {
        let (status, _) = s
            .post(
                "/v1/decide",
                &json!({"userId": "u", "fetchSegments": fetch}),
            )
            .await;
        assert_eq!(status, 200);
    }
    // Every 4xx is JSON: unknown path, wrong method, body too large, bad JSON.
    let checks = [
        s.http.get(format!("{}/v1/nothing", s.base)),
        s.http.get(format!("{}/v1/decide", s.base)),
        s.http
            .post(format!("{}/v1/decide", s.base))
            .header("content-type", "application/json")
            .body("x".repeat(5000)),
        s.http.post(format!("{}/v1/decide", s.base)).body("{"),
    ];
    let mut statuses = Vec::new();
    for req in checks {
        let r = req.send().await.unwrap();
        statuses.push(r.status().as_u16());
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/json"), "{ct}");
        let e: Value = r.json().await.unwrap();
        assert!(!e["error"].as_str().unwrap().is_empty(), "{e}");
    }
    assert_eq!(statuses, [404, 405, 413, 400]);
    // A batch operation with an unknown method is not echoed back.
    let (status, b) = s
        .post(
            "/v1/batch",
            &json!({"operations": [{"method": "<script>", "url": "/v1/<b>", "operationID": "1"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let text = b.to_string();
    assert!(
        !text.contains("<script>") && !text.contains("<b>"),
        "{text}"
    );
    assert_eq!(b["response"][0]["status"], 400);
    s.stop().await;
}

#[tokio::test]
async fn webhook_checks_the_signature_first() {
    let s = start("webhook", |_| {}).await;
    let hook = |pid: u64| {
        json!({"project_id": pid, "timestamp": 1, "event": "project.datafile_updated",
               "data": {"revision": 2, "cdn_url": "x"}})
        .to_string()
    };
    let send = |body: String, sig: Option<String>| {
        let mut r = s
            .http
            .post(format!("{}/webhooks/optimizely", s.base))
            .body(body);
        if let Some(sig) = sig {
            r = r.header("X-Hub-Signature", sig);
        }
        r.send()
    };
    // Unsigned: 401 whether the project exists or not, and before parsing.
    for body in [hook(13001), hook(999), "not json".to_string()] {
        let r = send(body, None).await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = send(
        hook(999),
        Some(webhook::sign(b"wrong", hook(999).as_bytes())),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    // Signed for a project that is not the signer's: 204, nothing refreshed (Agent).
    let r = send(
        hook(999),
        Some(webhook::sign(SECRET.as_bytes(), hook(999).as_bytes())),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    // Signed and known.
    let r = send(
        hook(13001),
        Some(webhook::sign(SECRET.as_bytes(), hook(13001).as_bytes())),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    // Signed but not JSON: 400.
    let r = send("{".into(), Some(webhook::sign(SECRET.as_bytes(), b"{")))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

#[tokio::test]
async fn activate_override_lookup_save() {
    let s = start("legacy", |c| {
        c.server.api.enable_overrides = true;
        c.server.api.user_profile_service = Some(UserProfileSection::default());
    })
    .await;
    let pro = json!({"userId": "p1", "userAttributes": {"plan": "pro"}});
    let free = json!({"userId": "f1", "userAttributes": {"plan": "free"}});
    // Features and experiments, as basic_activate.py asks for them.
    let (status, d) = s.post("/v1/activate?featureKey=checkout", &pro).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        d[0],
        json!({"userId": "p1", "experimentKey": "checkout_test", "featureKey": "checkout",
               "variationKey": "treatment", "type": "feature", "enabled": true,
               "variables": {"color": "blue-1", "limit": 25, "ratio": 0.75, "meta": {"tier": "pro"}}})
    );
    let (_, d) = s.post("/v1/activate?featureKey=banner", &free).await;
    assert_eq!(
        d[0]["experimentKey"], "",
        "rollout: no experiment named: {d}"
    );
    assert_eq!(d[0]["enabled"], true);
    assert!(d[0].get("variables").is_none(), "no variables: left out");
    let (_, d) = s
        .post("/v1/activate?experimentKey=checkout_test", &pro)
        .await;
    assert_eq!(
        d[0],
        json!({"userId": "p1", "experimentKey": "checkout_test", "featureKey": "",
               "variationKey": "treatment", "type": "experiment", "enabled": true})
    );
    let (_, d) = s
        .post(
            "/v1/activate?type=experiment&type=feature&enabled=false",
            &free,
        )
        .await;
    let keys: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["experimentKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["checkout_test"], "only the disabled decision: {d}");
    let (status, _) = s.post("/v1/activate?featureKey=nope", &pro).await;
    assert_eq!(status, 404);
    let (status, _) = s.post("/v1/activate?type=other", &pro).await;
    assert_eq!(status, 400);

    // Override puts the free user into the experiment; removing it takes them out.
    let (status, o) = s
        .post(
            "/v1/override",
            &json!({"userId": "f1", "experimentKey": "checkout_test", "variationKey": "treatment"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(o["prevVariationKey"], "");
    let (_, d) = s
        .post("/v1/activate?experimentKey=checkout_test", &free)
        .await;
    assert_eq!(d[0]["variationKey"], "treatment");
    let (_, o) = s
        .post(
            "/v1/override",
            &json!({"userId": "f1", "experimentKey": "checkout_test", "variationKey": ""}),
        )
        .await;
    assert_eq!(o["prevVariationKey"], "treatment");
    assert_eq!(o["messages"], json!(["removing previous override"]));
    let (_, d) = s
        .post("/v1/activate?experimentKey=checkout_test", &free)
        .await;
    assert_eq!(d[0]["variationKey"], "");

    // The pro user's bucketing was saved by the profile service.
    let (status, l) = s.post("/v1/lookup", &json!({"userId": "p1"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        l,
        json!({"userId": "p1", "experimentBucketMap": {"50001": {"variation_id": "90001"}}})
    );
    // A saved profile makes the free user sticky in the experiment.
    let (status, _) = s
        .post(
            "/v1/save",
            &json!({"userId": "f1", "experimentBucketMap": {"50001": {"variation_id": "90001"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, d) = s.post("/v1/decide?keys=checkout", &free).await;
    assert_eq!(d["ruleKey"], "checkout_test", "{d}");
    // Batched, like Agent's batch example.
    let (_, b) = s
        .post(
            "/v1/batch",
            &json!({"operations": [
                {"method": "POST", "url": "/v1/activate", "operationID": "1", "body": pro,
                 "parameters": {"featureKey": "checkout"}},
                {"method": "POST", "url": "/v1/lookup", "operationID": "2", "body": {"userId": "f1"}}
            ]}),
        )
        .await;
    assert_eq!(b["errorCount"], 0, "{b}");
    assert_eq!(b["response"][0]["body"][0]["variationKey"], "treatment");
    assert_eq!(b["response"][1]["body"]["userId"], "f1");
    s.stop().await;
}

/// `store: sqlite` keeps profiles across a restart of the server: a profile saved before
/// the restart still makes the user sticky after it, and lookup returns it.
#[tokio::test]
async fn sqlite_profiles_survive_a_restart() {
    use flagbridge_sync::connector::config::agent_api::ProfileStoreKind;
    let sqlite = |c: &mut Config| {
        c.server.api.user_profile_service = Some(UserProfileSection {
            store: ProfileStoreKind::Sqlite,
        });
    };
    let s = start("ups-sqlite", sqlite).await;
    let dir = s.dir.clone();
    let free = json!({"userId": "f1", "userAttributes": {"plan": "free"}});
    let (_, d) = s.post("/v1/decide?keys=checkout", &free).await;
    assert_ne!(
        d["ruleKey"], "checkout_test",
        "not in the experiment by itself: {d}"
    );
    let (status, _) = s
        .post(
            "/v1/save",
            &json!({"userId": "f1", "experimentBucketMap": {"50001": {"variation_id": "90001"}}}),
        )
        .await;
    assert_eq!(status, 200);
    s.handle.shutdown().await.unwrap();
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("profiles-") && f.ends_with(".sqlite")),
        "{files:?}"
    );

    let s = start_in(dir, sqlite).await;
    let (status, l) = s.post("/v1/lookup", &json!({"userId": "f1"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        l,
        json!({"userId": "f1", "experimentBucketMap": {"50001": {"variation_id": "90001"}}})
    );
    let (_, d) = s.post("/v1/decide?keys=checkout", &free).await;
    assert_eq!(
        d["ruleKey"], "checkout_test",
        "sticky after the restart: {d}"
    );
    assert_eq!(d["variationKey"], "treatment");
    s.stop().await;
}

/// `store: redis` shares profiles between instances through the fleet's Redis: a profile
/// saved on one instance makes the user sticky on another; without a `store:` section the
/// start fails with an error naming both keys.
#[tokio::test]
async fn redis_profiles_are_shared_between_instances() {
    use flagbridge_sync::connector::config::agent_api::ProfileStoreKind;
    use flagbridge_sync::fleet::FleetConfig;
    let Ok(redis) = flagbridge_sync::testing::RedisServer::start() else {
        eprintln!("redis_profiles_are_shared_between_instances: skipped, no redis-server");
        assert!(std::env::var_os("CI").is_none(), "CI installs redis-server");
        return;
    };
    let url = redis.url();
    let with_redis = |c: &mut Config| {
        c.server.api.user_profile_service = Some(UserProfileSection {
            store: ProfileStoreKind::Redis,
        });
        c.store = Some(FleetConfig::new(url.clone()));
    };
    let a = start("ups-redis-a", with_redis).await;
    let b = start("ups-redis-b", with_redis).await;
    let free = json!({"userId": "f1", "userAttributes": {"plan": "free"}});
    let (_, d) = b.post("/v1/decide?keys=checkout", &free).await;
    assert_ne!(d["ruleKey"], "checkout_test", "{d}");
    let (status, _) = a
        .post(
            "/v1/save",
            &json!({"userId": "f1", "experimentBucketMap": {"50001": {"variation_id": "90001"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, l) = b.post("/v1/lookup", &json!({"userId": "f1"})).await;
    assert_eq!(
        l,
        json!({"userId": "f1", "experimentBucketMap": {"50001": {"variation_id": "90001"}}})
    );
    let (_, d) = b.post("/v1/decide?keys=checkout", &free).await;
    assert_eq!(
        d["ruleKey"], "checkout_test",
        "sticky on the other instance: {d}"
    );
    a.stop().await;
    b.stop().await;

    let text: &'static str = Box::leak(datafile_json("1").to_string().into_boxed_str());
    let mut config = Config::embedded_default(text, "key").unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.state_dir = dir.path().to_path_buf();
    config.server.api.user_profile_service = Some(UserProfileSection {
        store: ProfileStoreKind::Redis,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = serve::start(config, listener, RuntimeOptions::default())
        .await
        .expect_err("no store: section");
    assert!(error.to_string().contains("store:"), "{error}");
}

#[tokio::test]
async fn opt_in_endpoints_are_off_by_default_and_cors() {
    let s = start("defaults", |_| {}).await;
    let (status, e) = s
        .post(
            "/v1/override",
            &json!({"userId": "u", "experimentKey": "checkout_test", "variationKey": "treatment"}),
        )
        .await;
    assert_eq!(status, 403, "{e}");
    let (status, e) = s.post("/v1/lookup", &json!({"userId": "u"})).await;
    assert_eq!(status, 500, "{e}");
    let r = s
        .http
        .post(format!("{}/v1/decide", s.base))
        .header("origin", "https://app.example")
        .json(&json!({"userId": "u"}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    s.stop().await;

    let s = start("cors", |c| {
        c.server.api.cors = Some(CorsSection {
            allowed_origins: vec!["https://app.example".into()],
            allowed_headers: vec!["Content-Type".into(), "X-Optimizely-SDK-Key".into()],
            max_age_secs: 60,
        });
        c.server.auth_token = Some(Secret::new("t0ken"));
    })
    .await;
    let pre = |origin: &str| {
        s.http
            .request(reqwest::Method::OPTIONS, format!("{}/v1/decide", s.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let r = pre("https://app.example").await.unwrap();
    assert_eq!(r.status(), 204, "a preflight needs no token");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["access-control-max-age"], "60");
    let r = pre("https://evil.example").await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .http
        .post(format!("{}/v1/decide", s.base))
        .bearer_auth("t0ken")
        .header("origin", "https://app.example")
        .json(&json!({"userId": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    s.stop().await;
}

#[tokio::test]
async fn notification_event_stream_is_opt_in() {
    let s = start("sse-off", |_| {}).await;
    let r = s
        .http
        .get(format!("{}/v1/notifications/event-stream", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    s.stop().await;

    let s = start("sse", |c| c.server.api.enable_notifications = true).await;
    let r = s
        .http
        .get(format!(
            "{}/v1/notifications/event-stream?filter=bogus",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut stream = s
        .http
        .get(format!(
            "{}/v1/notifications/event-stream?filter=decision",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (status, _) = s
        .post(
            "/v1/decide?keys=checkout",
            &json!({"userId": "sse-user", "userAttributes": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut text = String::new();
    while !text.contains("\n\n") || !text.contains("sse-user") {
        let chunk = stream.chunk().await.unwrap().expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("sse-user"))
        .unwrap();
    assert!(text.contains("event: decision"), "{text}");
    let data: Value = serde_json::from_str(line.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(data["flagKey"], "checkout");
    assert_eq!(data["variationKey"], "treatment");
    drop(stream);
    s.stop().await;
}

#[tokio::test]
async fn oauth_tokens_grant_their_sdk_keys() {
    use flagbridge_sync::connector::config::agent_api::{OAuthClient, OAuthSection};
    let client = |id: &str, secret: &str, key: &str| OAuthClient {
        client_id: id.into(),
        client_secret: Secret::new(secret),
        sdk_keys: vec![key.into()],
    };
    let s = start("oauth", |c| {
        c.server.api.oauth = Some(OAuthSection {
            hmac_secret: Secret::new("hmac-key"),
            ttl_secs: 600,
            clients: vec![client("c1", "s1", "key"), client("c2", "s2", "other")],
        });
    })
    .await;
    let token = |id: &str, secret: &str| json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret});
    let (status, e) = s.post("/oauth/token", &token("c1", "wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    let mut bad_grant = token("c1", "s1");
    bad_grant["grant_type"] = json!("password");
    let (status, e) = s.post("/oauth/token", &bad_grant).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"], "unsupported_grant_type");
    let (status, t) = s.post("/oauth/token", &token("c1", "s1")).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 600);
    let good = t["access_token"].as_str().unwrap().to_string();
    // Form-encoded, as OAuth clients send it.
    let r = s
        .http
        .post(format!("{}/oauth/token", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=c2&client_secret=s2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let other: Value = r.json().await.unwrap();
    let other = other["access_token"].as_str().unwrap().to_string();
    // An expired token signed with the right key.
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sdk_keys": ["key"], "exp": 1, "sub": "c1"}),
        &jsonwebtoken::EncodingKey::from_secret(b"hmac-key"),
    )
    .unwrap();
    let mut tampered = good.clone();
    tampered.pop();
    let decide = |bearer: Option<String>| {
        let mut r = s
            .http
            .post(format!("{}/v1/decide?keys=banner", s.base))
            .json(&json!({"userId": "u"}));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    let mut statuses = Vec::new();
    for bearer in [Some(good), None, Some(other), Some(expired), Some(tampered)] {
        statuses.push(decide(bearer).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 401, 403, 401, 401]);
    s.stop().await;
}

/// Agent's own example scripts (`examples/basic.py`, `basic_activate.py`, `advanced.py`,
/// `track.py`, `override.py` in optimizely/agent), replayed request for request against
/// `serve`: the same paths, query strings (Python `requests` encodes a list as a repeated
/// key), headers and bodies, and what each script reads from the answers (`resp.json()[0]`,
/// the `featuresMap` / `experimentsMap` keys of `/v1/config`). Run on the test datafile and,
/// when `../shared/datafiles` exists, on every real datafile there (skipped with a message
/// otherwise). The conversion of `track.py` is checked at a loopback logx.
mod agent_examples {

    use std::path::PathBuf;

    use flagbridge_sync::connector::config::Config;
    use flagbridge_sync::connector::serve::{self, RuntimeOptions};
    use flagbridge_sync::testing::{datafile_json, FakeEventEndpoint};
    use serde_json::{json, Value};

    /// What the scripts send as the user.
    fn payload() -> Value {
        json!({"userId": "test-user", "userAttributes": {
            "attr1": "sample-attribute-1", "attr2": "sample-attribute-2"}})
    }

    /// Query string as Python `requests` writes `params` (lists as repeated keys).
    fn query(params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse("http://x/").unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.query().unwrap_or_default().to_string()
    }

    /// Replays the scripts on one datafile; returns the requests made.
    async fn replay(name: &str, datafile: String) -> usize {
        let events = FakeEventEndpoint::start().await.unwrap();
        let sdk_key = serde_json::from_str::<Value>(&datafile)
            .ok()
            .and_then(|d| d["sdkKey"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "example-key".into());
        let text: &'static str = Box::leak(datafile.into_boxed_str());
        let mut config = Config::embedded_default(text, &sdk_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        config.state_dir = dir.path().to_path_buf();
        config.server.api.enable_overrides = true;
        config.urls.events = events.url().parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = serve::start(config, listener, RuntimeOptions::default())
            .await
            .unwrap();
        let base = format!("http://{}", handle.local_addr());
        let s = reqwest::Client::new();
        let mut requests = 0;
        let mut post = |path: String, body: Value| {
            requests += 1;
            let req = s
                .post(format!("{base}{path}"))
                .header("X-Optimizely-SDK-Key", &sdk_key)
                .json(&body);
            async move {
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                (status, text)
            }
        };

        // basic.py / basic_activate.py: GET /v1/config, then one activate per feature and per
        // experiment key, printing `resp.json()[0]`.
        let env: Value = s
            .get(format!("{base}/v1/config"))
            .header("X-Optimizely-SDK-Key", &sdk_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let features: Vec<String> = env["featuresMap"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let experiments: Vec<String> = env["experimentsMap"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        assert!(
            !features.is_empty() || !experiments.is_empty(),
            "{name}: /v1/config lists nothing: {env}"
        );
        for (param, keys) in [("featureKey", &features), ("experimentKey", &experiments)] {
            for key in keys {
                let (status, text) = post(
                    format!("/v1/activate?{}", query(&[(param, key)])),
                    payload(),
                )
                .await;
                assert_eq!(status, 200, "{name}: activate {param}={key}: {text}");
                let answer: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(answer[0][param], json!(key), "{name}: {answer}");
                assert_eq!(answer[0]["userId"], "test-user", "{name}: {answer}");
            }
        }

        // advanced.py: one activate with every feature key and every experiment key.
        let mut params: Vec<(&str, &str)> = features
            .iter()
            .map(|k| ("featureKey", k.as_str()))
            .collect();
        params.extend(experiments.iter().map(|k| ("experimentKey", k.as_str())));
        let (status, text) = post(
            format!("/v1/activate?{}", query(&params)),
            json!({"userId": "test-user"}),
        )
        .await;
        assert_eq!(status, 200, "{name}: advanced activate: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let list = answer.as_array().expect("an array");
        for key in &features {
            assert!(
                list.iter().any(|d| d["featureKey"] == json!(key)),
                "{name}: advanced: no answer for feature {key}"
            );
        }
        for key in &experiments {
            assert!(
                list.iter()
                    .any(|d| d["experimentKey"] == json!(key) && d["type"] == "experiment"),
                "{name}: advanced: no answer for experiment {key}"
            );
        }

        // track.py: one conversion with two tags, for the datafile's first event.
        if let Some(event_key) = env["eventsMap"]
            .as_object()
            .and_then(|m| m.keys().next().cloned())
        {
            let mut body = payload();
            body["eventTags"] =
                json!({"event-tag-1": "custom-tag-1", "event-tag-2": "custom-tag-2"});
            let (status, text) = post(
                format!("/v1/track?{}", query(&[("eventKey", &event_key)])),
                body,
            )
            .await;
            assert!(
                status == 200 || status == 204,
                "{name}: track: {status} {text}"
            );
        }

        // override.py: the first experiment's first variation for test-user; activating the
        // experiment then gives that variation.
        if let Some(exp) = experiments.first() {
            let variation = env["experimentsMap"][exp]["variationsMap"]
                .as_object()
                .and_then(|m| m.keys().next().cloned())
                .expect("a variation");
            let (status, text) = post(
                "/v1/override".into(),
                json!({"userId": "test-user", "experimentKey": exp, "variationKey": variation}),
            )
            .await;
            assert_eq!(status, 200, "{name}: override: {text}");
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["experimentKey"], json!(exp), "{name}: {answer}");
            assert_eq!(answer["variationKey"], json!(variation), "{name}: {answer}");
            let (_, text) = post(
                format!("/v1/activate?{}", query(&[("experimentKey", exp)])),
                payload(),
            )
            .await;
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                answer[0]["variationKey"],
                json!(variation),
                "{name}: {answer}"
            );
        }

        // Shutting down delivers what was accepted; the conversion of track.py is among it.
        handle.shutdown().await.unwrap();
        if env["eventsMap"].as_object().is_some_and(|m| !m.is_empty()) {
            let tagged = events
                .visitors()
                .iter()
                .any(|v| v["snapshots"][0]["events"][0]["tags"]["event-tag-1"] == "custom-tag-1");
            assert!(
                tagged,
                "{name}: track.py's conversion with its tags reached logx"
            );
        }
        requests
    }

    #[tokio::test]
    async fn agent_example_scripts_run_unchanged() {
        let n = replay("test datafile", datafile_json("1").to_string()).await;
        assert!(n > 5);
        let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datafiles");
        let Ok(entries) = std::fs::read_dir(&shared) else {
            eprintln!(
                "agent_examples: {} is absent; replayed on the test datafile only",
                shared.display()
            );
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut total = 0;
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            total += replay(&path.display().to_string(), text).await;
        }
        eprintln!(
            "agent_examples: {} datafiles, {total} requests replayed",
            files.len()
        );
        if std::env::var_os("CI").is_some() {
            assert!(files.len() >= 10, "CI: the shared datafiles are expected");
        }
    }
}
