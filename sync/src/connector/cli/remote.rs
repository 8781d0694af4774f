//! `flagbridge decide --datafile F --cases C --remote URL`: the cases run in order through the
//! async decide, with CMAB predictions at `URL/predict/{ruleId}` and ODP at `URL`, as
//! `decide_remote.mjs` runs them through the JavaScript SDK. Accepts its case extensions
//! (`mode`, `qualified_segments`, `fetch_segments`, `parallel`, `odp_event`, `sleep`) and
//! writes its lines: the decision lines of `flagbridge decide`, plus a `#remote` line per case
//! with traffic or a segment fetch, the requests read from the fake's `GET URL/_log`.
//!
//! State (the CMAB cache, the segment cache, the uuid numbering) lives for the whole run.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use flagbridge_engine::{AsyncKeys, ClientInfo, Decider, Decision, ProjectConfig, UserContext};
use serde_json::{json, Map, Value};

use super::cases::{
    client_info, decide_options, decision_line, run_case_line, string_list, user_context,
};
use super::decide::{load_datafile, DecideError, DecideSummary};
use super::remote_log::UuidRefs;
use crate::remote::decide::join_all;
use crate::remote::{
    decide_async, CmabService, OdpManager, SegmentOption, DEFAULT_CMAB_CACHE_SIZE,
    DEFAULT_CMAB_CACHE_TTL, DEFAULT_SEGMENTS_CACHE_SIZE, DEFAULT_SEGMENTS_CACHE_TTL,
};

/// Settings of a remote run (the command's flags).
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// The base URL of the prediction and ODP service (`--remote`).
    pub url: String,
    /// CMAB cache entries; 0 = default.
    pub cmab_cache_size: usize,
    /// CMAB cache TTL; zero = default.
    pub cmab_cache_ttl: Duration,
    /// Segment cache entries.
    pub odp_cache_size: usize,
    /// Segment cache TTL.
    pub odp_cache_ttl: Duration,
    /// No ODP manager: segment fetches answer "none" without a request.
    pub no_odp: bool,
}

impl RemoteSettings {
    /// Every default, against `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteSettings {
            url: url.into().trim_end_matches('/').to_string(),
            cmab_cache_size: DEFAULT_CMAB_CACHE_SIZE,
            cmab_cache_ttl: DEFAULT_CMAB_CACHE_TTL,
            odp_cache_size: DEFAULT_SEGMENTS_CACHE_SIZE,
            odp_cache_ttl: DEFAULT_SEGMENTS_CACHE_TTL,
            no_odp: false,
        }
    }
}

struct Runner {
    config: ProjectConfig,
    cmab: CmabService,
    odp: Option<OdpManager>,
    client: ClientInfo,
    log: FakeLog,
}

/// The fake's request log, read from where the last read stopped.
struct FakeLog {
    http: reqwest::Client,
    url: String,
    cursor: usize,
    refs: UuidRefs,
}

/// Runs every non-empty line of `cases` (a path, or `-` for stdin) against the service at
/// `settings.url` and writes the output lines to `out`.
pub async fn run_remote(
    datafile: &Path,
    cases: &str,
    settings: &RemoteSettings,
    out: &mut dyn Write,
) -> Result<DecideSummary, DecideError> {
    let config = load_datafile(datafile)?;
    let cases_err = |source| DecideError::Cases {
        name: cases.to_string(),
        source,
    };
    let text = if cases == "-" {
        let mut lines = Vec::new();
        for line in std::io::stdin().lock().lines() {
            lines.push(line.map_err(cases_err)?);
        }
        lines
    } else {
        let file = std::fs::File::open(cases).map_err(cases_err)?;
        std::io::BufReader::new(file)
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .map_err(cases_err)?
    };
    let service_err = |e: String| DecideError::Cases {
        name: settings.url.clone(),
        source: std::io::Error::other(e),
    };
    let cmab = CmabService::builder()
        .prediction_endpoint_template(format!("{}/predict/%s", settings.url))
        .cache_size(settings.cmab_cache_size)
        .cache_ttl(settings.cmab_cache_ttl)
        .build()
        .map_err(|e| service_err(e.to_string()))?;
    let odp = if settings.no_odp {
        None
    } else {
        Some(
            OdpManager::builder()
                .host(settings.url.clone())
                .segments_cache_size(settings.odp_cache_size)
                .segments_cache_ttl(settings.odp_cache_ttl)
                .build()
                .map_err(|e| service_err(e.to_string()))?,
        )
    };
    let mut runner = Runner {
        config,
        cmab,
        odp,
        client: client_info(),
        log: FakeLog {
            http: reqwest::Client::new(),
            url: settings.url.clone(),
            cursor: 0,
            refs: UuidRefs::default(),
        },
    };
    let mut summary = DecideSummary::default();
    let mut n = 0;
    for line in text.iter().filter(|l| !l.trim().is_empty()) {
        let lines = runner.case(n, line).await;
        let failed = lines.iter().any(|v| v.get("error").is_some());
        for value in lines {
            writeln!(out, "{value}").map_err(DecideError::Output)?;
        }
        summary.failed += usize::from(failed);
        n += 1;
    }
    summary.cases = n;
    out.flush().map_err(DecideError::Output)?;
    Ok(summary)
}

fn given<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn pairs(v: Option<&Value>) -> Vec<(String, Value)> {
    match v {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    }
}

impl FakeLog {
    /// The requests the fake received since the last call (empty when it has no log).
    async fn fetch(&mut self) -> Vec<Value> {
        let got = self.http.get(format!("{}/_log", self.url)).send().await;
        let all = match got {
            Ok(r) if r.status().is_success() => r.json::<Vec<Value>>().await.unwrap_or_default(),
            _ => Vec::new(),
        };
        let fresh = all.get(self.cursor..).map(<[Value]>::to_vec);
        self.cursor = all.len().max(self.cursor);
        let mut fresh = fresh.unwrap_or_default();
        self.refs.note(&mut fresh);
        fresh
    }
}

impl Runner {
    async fn case(&mut self, case: usize, line: &str) -> Vec<Value> {
        let parsed: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return vec![json!({"case": case, "error": format!("invalid JSON: {e}")})],
        };
        let Value::Object(obj) = parsed else {
            return vec![json!({"case": case, "error": "case is not a JSON object"})];
        };
        match obj.get("type").and_then(Value::as_str) {
            Some("sleep") => {
                let ms = obj.get("ms").and_then(Value::as_u64).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                return vec![
                    json!({"case": case, "flag_key": "#sleep", "type": "sleep", "ms": ms}),
                ];
            }
            Some("odp_event") => return self.odp_event(case, &obj).await,
            _ => {}
        }
        let user_id = given(&obj, "user_id")
            .or_else(|| given(&obj, "userId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(user_id) = user_id else {
            return vec![json!({"case": case, "error": "user_id must be a string"})];
        };
        let attributes = match given(&obj, "attributes") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let mut user = user_context(&user_id, &attributes);
        if let Some(v) = given(&obj, "forced").and_then(Value::as_array) {
            for f in v {
                let flag = f.get("flag").and_then(Value::as_str).unwrap_or("");
                let variation = f.get("variation").and_then(Value::as_str).unwrap_or("");
                let rule = f.get("rule").and_then(Value::as_str);
                user.set_forced_decision(flag, rule, variation);
            }
        }
        if let Some(segments) = given(&obj, "qualified_segments").and_then(string_list) {
            user.set_qualified_segments(segments);
        }
        let mut extra = Map::new();
        if let Some(fetch) = obj.get("fetch_segments") {
            let options: Vec<SegmentOption> = fetch
                .as_array()
                .map(|a| a.iter().filter_map(|o| o.as_str()?.parse().ok()).collect())
                .unwrap_or_default();
            let found = match &self.odp {
                Some(odp) => odp
                    .fetch_qualified_segments(&self.config, &user_id, &options)
                    .await
                    .ok(),
                None => None,
            };
            let segments = found.clone().map_or(Value::Null, |s| json!(s));
            match found.clone() {
                Some(list) => user.set_qualified_segments(list),
                None => user.clear_qualified_segments(),
            }
            extra.insert(
                "segments_fetch".into(),
                json!({"ok": found.is_some(), "segments": segments}),
            );
        }
        if obj.get("type").and_then(Value::as_str) == Some("track") {
            let mut lines = run_case_line(&self.config, case, line);
            lines.retain(|l| l.get("type").and_then(Value::as_str) == Some("track"));
            self.remote_line(case, &user_id, extra, &mut lines).await;
            return lines;
        }
        let flags: Option<Vec<String>> = given(&obj, "flags").and_then(string_list);
        let options = decide_options(
            &given(&obj, "options")
                .and_then(string_list)
                .unwrap_or_default(),
        );
        let sync = obj.get("mode").and_then(Value::as_str) == Some("sync");
        let parallel = obj.get("parallel").and_then(Value::as_u64).unwrap_or(1);
        let decider = Decider::new(&self.config);
        let keys: Vec<&str> = flags.iter().flatten().map(String::as_str).collect();
        let keys = match &flags {
            None => AsyncKeys::All,
            Some(_) if keys.len() == 1 => AsyncKeys::One(keys[0]),
            Some(_) => AsyncKeys::Keys(&keys),
        };
        if parallel > 1 && !sync {
            let users: Vec<UserContext> = (0..parallel).map(|_| user.clone()).collect();
            let runs = users
                .iter()
                .map(|u| decide_async(&decider, Some(&self.cmab), u, keys, options));
            let results = join_all(runs).await;
            let requests = self.log.fetch().await;
            let mut lines = Vec::new();
            let mut impressions = Vec::new();
            for (j, decisions) in results.iter().enumerate() {
                for d in decisions {
                    if let Some(mut l) = decision_line(0, &user, &self.client, d) {
                        impressions.extend(take_impressions(&mut l));
                        if l.get("omitted_from_result").is_some() {
                            continue;
                        }
                        l["case"] = json!(format!("{case}.{j}"));
                        l["impressions"] = Value::Null;
                        lines.push(l);
                    }
                }
            }
            self.log.refs.impressions(&mut impressions);
            let mut remote = Map::new();
            remote.insert("case".into(), json!(case));
            remote.insert("flag_key".into(), json!("#remote"));
            remote.insert("type".into(), json!("remote"));
            remote.insert("user_id".into(), json!(user_id));
            remote.insert("parallel".into(), json!(parallel));
            remote.extend(extra);
            remote.insert("impressions".into(), Value::Array(impressions));
            remote.insert(
                "requests".into(),
                Value::Array(self.log.refs.requests(&requests)),
            );
            lines.push(Value::Object(remote));
            return lines;
        }
        let decisions: Vec<Decision<'_>> = if sync {
            match keys {
                AsyncKeys::All => decider.decide_all(&user, options),
                AsyncKeys::One(k) => vec![decider.decide(&user, k, options)],
                AsyncKeys::Keys(k) => decider.decide_for_keys(&user, k, options),
            }
        } else {
            decide_async(&decider, Some(&self.cmab), &user, keys, options).await
        };
        let requests = self.log.fetch().await;
        let mut lines: Vec<Value> = decisions
            .iter()
            .filter_map(|d| decision_line(case, &user, &self.client, d))
            .collect();
        // As the oracle: result entries first, then the impressions of omitted flags.
        lines.sort_by_key(|l| l.get("omitted_from_result").is_some());
        for l in &mut lines {
            if let Some(Value::Array(list)) = l.get_mut("impressions") {
                self.log.refs.impressions(list);
            }
        }
        if !requests.is_empty() || !extra.is_empty() {
            let mut remote = remote_head(case, &user_id);
            remote.extend(extra);
            remote.insert(
                "requests".into(),
                Value::Array(self.log.refs.requests(&requests)),
            );
            lines.push(Value::Object(remote));
        }
        lines
    }

    async fn remote_line(
        &mut self,
        case: usize,
        user_id: &str,
        extra: Map<String, Value>,
        lines: &mut Vec<Value>,
    ) {
        let requests = self.log.fetch().await;
        if !requests.is_empty() || !extra.is_empty() {
            let mut remote = remote_head(case, user_id);
            remote.extend(extra);
            remote.insert(
                "requests".into(),
                Value::Array(self.log.refs.requests(&requests)),
            );
            lines.push(Value::Object(remote));
        }
    }

    async fn odp_event(&mut self, case: usize, obj: &Map<String, Value>) -> Vec<Value> {
        let action = obj.get("action").and_then(Value::as_str).unwrap_or("");
        if let Some(odp) = &self.odp {
            let sent = odp.send_event(
                &self.config,
                action,
                obj.get("event_type").and_then(Value::as_str),
                pairs(obj.get("identifiers")),
                pairs(obj.get("data")),
            );
            if let Err(e) = sent {
                tracing::info!(error = %e, "ODP event dropped");
            }
            odp.flush().await;
        }
        let user_id = obj.get("user_id").cloned().unwrap_or(Value::Null);
        let requests = self.log.fetch().await;
        let mut remote = Map::new();
        remote.insert("case".into(), json!(case));
        remote.insert("flag_key".into(), json!("#remote"));
        remote.insert("type".into(), json!("remote"));
        remote.insert("user_id".into(), user_id);
        remote.insert(
            "odp_event".into(),
            obj.get("action").cloned().unwrap_or(Value::Null),
        );
        remote.insert(
            "requests".into(),
            Value::Array(self.log.refs.requests(&requests)),
        );
        vec![Value::Object(remote)]
    }
}

fn remote_head(case: usize, user_id: &str) -> Map<String, Value> {
    let mut remote = Map::new();
    remote.insert("case".into(), json!(case));
    remote.insert("flag_key".into(), json!("#remote"));
    remote.insert("type".into(), json!("remote"));
    remote.insert("user_id".into(), json!(user_id));
    remote
}

fn take_impressions(line: &mut Value) -> Vec<Value> {
    match line.get_mut("impressions").map(Value::take) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    }
}
