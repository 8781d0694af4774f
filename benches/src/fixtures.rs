//! The benchmark plan (`benches/cases.json`): which fixture datafiles, which flag for each decide
//! case, which users. The Node peer script (`benches/js/bench.js`) reads the same file, so every
//! engine decides the same flags for the same user ids and attributes.
//!
//! Bench support code: a missing or malformed fixture is a broken checkout, so these helpers
//! panic with a message naming the file instead of returning errors.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The workspace root (parent of `benches/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `datafile-fixtures/` in the workspace root.
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("datafile-fixtures")
}

/// One user: id and attributes in the order given in `cases.json`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub attributes: Vec<(String, Value)>,
}

/// A forced decision to set on the user before deciding (case c).
#[derive(Debug, Clone)]
pub struct Forced {
    pub flag: String,
    pub rule: Option<String>,
    pub variation: String,
}

/// The flag keys of the five decide cases for one datafile.
#[derive(Debug, Clone)]
pub struct FlagCases {
    /// (a) one experiment behind a two-condition audience, plus a three-rule rollout.
    pub experiment: String,
    /// (b) a flag with no rules at all.
    pub no_rules: String,
    /// (c) a forced decision.
    pub forced: Forced,
    /// (d) the flag decided with INCLUDE_REASONS (the case (a) flag unless set).
    pub reasons: String,
    /// (e) a flag whose variation carries variables, decided with variables included.
    pub variables: String,
}

/// One fixture datafile of the plan.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// `small` or `large`.
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    pub flags: FlagCases,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub small: Fixture,
    pub large: Fixture,
    pub users: Vec<User>,
    /// The audience-alone benches: datafile, user and audience ids by label.
    pub audience_benches: AudienceBenches,
}

/// Audiences evaluated on their own (nested and/or/not, semver, substring, ...).
#[derive(Debug, Clone)]
pub struct AudienceBenches {
    pub path: PathBuf,
    pub text: String,
    pub user: User,
    /// (label, audience id).
    pub audiences: Vec<(String, String)>,
}

impl Plan {
    /// Reads `benches/cases.json` and the datafiles it names.
    pub fn load() -> Plan {
        let json = plan_json();
        let users = plan_users(&json);
        let aud = &json["audience_benches"];
        let aud_path = fixtures_dir().join(str_at(aud, "file"));
        let audience_benches = AudienceBenches {
            text: read(&aud_path),
            path: aud_path,
            user: user(&aud["user"]),
            audiences: aud["audiences"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
        };
        Plan {
            small: fixture(&json, "small"),
            large: fixture(&json, "large"),
            users,
            audience_benches,
        }
    }

    /// Both fixtures, small first.
    pub fn fixtures(&self) -> [&Fixture; 2] {
        [&self.small, &self.large]
    }
}

/// `benches/cases.json` as JSON.
pub fn plan_json() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases.json");
    let text = read(&path);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

/// The plan's users, without reading any datafile.
pub fn plan_users(json: &Value) -> Vec<User> {
    json["users"]
        .as_array()
        .unwrap_or_else(|| panic!("cases.json: `users` must be an array"))
        .iter()
        .map(user)
        .collect()
}

/// The path of the plan's `small` or `large` datafile, without reading it.
pub fn plan_datafile_path(json: &Value, name: &str) -> PathBuf {
    fixtures_dir().join(str_at(&json["datafiles"][name], "file"))
}

fn user(u: &Value) -> User {
    User {
        id: str_at(u, "id").to_owned(),
        attributes: u["attributes"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

fn fixture(json: &Value, name: &str) -> Fixture {
    let entry = &json["datafiles"][name];
    let path = plan_datafile_path(json, name);
    let flags = &entry["flags"];
    let experiment = str_at(flags, "experiment").to_owned();
    let forced = &flags["forced"];
    Fixture {
        name: name.to_owned(),
        text: read(&path),
        path,
        flags: FlagCases {
            reasons: flags["reasons"].as_str().unwrap_or(&experiment).to_owned(),
            experiment,
            no_rules: str_at(flags, "no_rules").to_owned(),
            forced: Forced {
                flag: str_at(forced, "flag").to_owned(),
                rule: forced["rule"].as_str().map(str::to_owned),
                variation: str_at(forced, "variation").to_owned(),
            },
            variables: str_at(flags, "variables").to_owned(),
        },
    }
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("cases.json: missing string `{key}` in {v}"))
}

/// Reads a whole file, panicking with its path.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `*.json` datafile under `datafile-fixtures/` (recursively), sorted by path; files whose
/// top-level object has no `version` key (golden decisions, case lists) are left out.
pub fn all_datafiles() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    collect(&fixtures_dir(), &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            let text = read(&path);
            let is_datafile = serde_json::from_str::<Value>(&text)
                .ok()
                .is_some_and(|v| v.get("version").is_some() && v.get("projectId").is_some());
            if is_datafile {
                out.push((path, text));
            }
        }
    }
}
