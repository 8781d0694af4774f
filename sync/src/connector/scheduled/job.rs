//! One run of the scheduled REST sync, and the cron loop around it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lists::ListWriter;
use super::membership::{MembershipStore, MEMBERSHIP_FILE};
pub use super::report::{ProjectReport, WinnerReport};
use crate::connector::config::Secret;
use crate::connector::config::{Config, ProjectSettings};
use crate::connector::rest::ratelimit::{PacerRegistry, PacingWindows, Window};
use crate::connector::rest::results::{ResultsCache, CACHE_FILE};
use crate::connector::rest::types::{Experiment, Project};
use crate::connector::rest::{pick_winners, RestClient, RestError, ResultsOutcome, Winner};

/// File (in the state directory) recording which contacts each winners' list already has.
pub const WINNERS_FILE: &str = "winners-state.json";
/// Default wait before asking again for results that answered 202.
pub const DEFAULT_RESULTS_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Catalog file prefix (`catalog-<project>.json`): what the last run listed.
pub const CATALOG_PREFIX: &str = "catalog-";
/// File (in the state directory) with each project's last run: `{project: {"finished_at_ms",
/// "report"}}`, read by the status page of `serve`.
pub const LAST_SYNC_FILE: &str = "last-sync.json";

/// Why a sync run failed as a whole (REST and Brevo list failures are reported per project).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncJobError {
    /// State directory I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Wait before asking again for 202 results; default [`DEFAULT_RESULTS_RETRY_DELAY`].
    pub results_retry_delay: Duration,
    /// Replaces the configured REST pacing (all three limiters) when set; default None.
    /// For tests against local fakes.
    pub rest_pacing: Option<Vec<Window>>,
    /// The pacers of each token: keep one registry for every run of a process, so runs and
    /// projects of one token share its budget; default a fresh registry.
    pub pacers: Arc<PacerRegistry>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            results_retry_delay: DEFAULT_RESULTS_RETRY_DELAY,
            rest_pacing: None,
            pacers: Arc::default(),
        }
    }
}

/// Contacts already put in each list (by list name).
#[derive(Debug, Default, Serialize, Deserialize)]
struct WinnersState {
    lists: BTreeMap<String, BTreeSet<String>>,
}

/// The Brevo list name for a winner.
pub fn list_name(project: &str, winner: &Winner) -> String {
    format!(
        "flagbridge {project} {} winner {}",
        winner.experiment_key, winner.variation_key
    )
}

/// Runs the REST sync once for every project that has a token and a project id.
pub async fn run_once<L: ListWriter>(
    config: &Config,
    lists: &L,
    options: &RunOptions,
) -> Result<Vec<ProjectReport>, SyncJobError> {
    let state_dir = &config.state_dir;
    let members_path = state_dir.join(MEMBERSHIP_FILE);
    let (members, bad) =
        MembershipStore::load(&members_path).map_err(|source| SyncJobError::Io {
            path: members_path.clone(),
            source,
        })?;
    if bad > 0 {
        tracing::warn!(path = %members_path.display(), bad, "skipped unreadable assignment lines");
    }
    let mut cache = ResultsCache::load(&state_dir.join(CACHE_FILE));
    let winners_path = state_dir.join(WINNERS_FILE);
    let mut winners_state: WinnersState = read_json(&winners_path).unwrap_or_default();

    let mut reports = Vec::new();
    let mut tokens = TokenProjects::default();
    for project in &config.projects {
        let report = run_project(
            config,
            project,
            lists,
            options,
            &members,
            &mut cache,
            &mut winners_state,
            &mut tokens,
        )
        .await;
        // Keep what was done even if a later project fails.
        cache.save().map_err(|source| SyncJobError::Io {
            path: state_dir.join(CACHE_FILE),
            source,
        })?;
        write_json(&winners_path, &winners_state)?;
        let report = report?;
        record_last_sync(&state_dir.join(LAST_SYNC_FILE), &report)?;
        reports.push(report);
    }
    Ok(reports)
}

/// Replaces this project's entry in the last-sync file (other projects' entries stay: each
/// project runs on its own schedule).
fn record_last_sync(path: &Path, report: &ProjectReport) -> Result<(), SyncJobError> {
    let mut all: serde_json::Map<String, serde_json::Value> = read_json(path).unwrap_or_default();
    all.insert(
        report.project.clone(),
        serde_json::json!({"finished_at_ms": now_ms(), "report": report}),
    );
    write_json(path, &all)
}

/// What `GET /v2/projects` said for each token during one run (asked once per token).
#[derive(Default)]
struct TokenProjects {
    by_token: HashMap<u64, ProjectsListing>,
}

/// The projects, or the failure's status (when any) and message.
type ProjectsListing = Result<Vec<Project>, (Option<u16>, String)>;

fn token_key(token: &Secret) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.expose().hash(&mut h);
    h.finish()
}

/// Checks `project_id` against the projects the token can read. `Err` ends the project's run
/// (a 401, or a project the token cannot see); a listing that fails otherwise is logged and
/// the run goes on unchecked.
async fn check_project(
    client: &RestClient,
    token: &Secret,
    project_id: &str,
    tokens: &mut TokenProjects,
) -> Result<(), String> {
    let key = token_key(token);
    if let std::collections::hash_map::Entry::Vacant(slot) = tokens.by_token.entry(key) {
        let listed = client.projects().await.map_err(|e| {
            let status = match &e {
                RestError::Status { status, .. } => Some(*status),
                _ => None,
            };
            (status, e.to_string())
        });
        slot.insert(listed);
    }
    match tokens.by_token.get(&key) {
        Some(Ok(projects)) if projects.iter().any(|p| p.id == project_id) => Ok(()),
        Some(Ok(projects)) => {
            let known: Vec<String> = projects
                .iter()
                .take(10)
                .map(|p| match &p.name {
                    Some(name) => format!("{} ({name})", p.id),
                    None => p.id.clone(),
                })
                .collect();
            Err(format!(
                "project_id {project_id} is not among the {} project(s) this access_token can \
                 read{}{}",
                projects.len(),
                if known.is_empty() { "" } else { ": " },
                known.join(", ")
            ))
        }
        Some(Err((Some(401), message))) => Err(message.clone()),
        Some(Err((_, message))) => {
            tracing::warn!(
                "cannot list the projects of the access_token ({message}); \
                 going on without checking project_id {project_id}"
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// Runs one listing: a failure is reported, and the last good listing of that kind stays in
/// the catalog.
fn listed<T: Serialize>(
    kind: &str,
    result: Result<Vec<T>, RestError>,
    catalog: &mut serde_json::Map<String, serde_json::Value>,
    previous: &serde_json::Map<String, serde_json::Value>,
    report: &mut ProjectReport,
) -> Option<usize> {
    match result {
        Ok(items) => {
            catalog.insert(kind.into(), to_value(&items));
            Some(items.len())
        }
        Err(e) => {
            report.errors.push(e.to_string());
            if let Some(old) = previous.get(kind) {
                catalog.insert(kind.into(), old.clone());
                report.listings_kept.push(kind.to_string());
            }
            None
        }
    }
}

fn experiment_name(exp: &Experiment) -> String {
    exp.key
        .clone()
        .or_else(|| exp.name.clone())
        .unwrap_or_else(|| format!("experiment {}", exp.id))
}

#[allow(clippy::too_many_arguments)]
async fn run_project<L: ListWriter>(
    config: &Config,
    project: &ProjectSettings,
    lists: &L,
    options: &RunOptions,
    members: &MembershipStore,
    cache: &mut ResultsCache,
    winners_state: &mut WinnersState,
    tokens: &mut TokenProjects,
) -> Result<ProjectReport, SyncJobError> {
    let mut report = ProjectReport {
        project: project.name.clone(),
        project_id: project.project_id.clone(),
        dry_run: lists.is_dry_run(),
        ..Default::default()
    };
    let (Some(token), Some(project_id)) = (&project.access_token, &project.project_id) else {
        report.skipped = Some(
            match (&project.access_token, &project.project_id) {
                (None, None) => "no access_token and no project_id",
                (None, _) => "no access_token",
                _ => "no project_id",
            }
            .into(),
        );
        return Ok(report);
    };
    let pacing = match &options.rest_pacing {
        Some(windows) => PacingWindows::uniform(windows.clone()),
        None => PacingWindows::per_minute(
            config.rest_rate_limit.requests_per_minute,
            config.rest_rate_limit.results_per_minute,
        ),
    };
    let client = match RestClient::builder(config.urls.rest.clone(), config.urls.flags.clone())
        .pacers(options.pacers.pacers(token, &pacing))
        .build(token.clone())
    {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(e.to_string());
            return Ok(report);
        }
    };
    if let Err(message) = check_project(&client, token, project_id, tokens).await {
        report.errors.push(message);
        return Ok(report);
    }
    let sync = &project.sync;
    let catalog_path = config
        .state_dir
        .join(format!("{CATALOG_PREFIX}{}.json", project.name));
    let previous: serde_json::Map<String, serde_json::Value> =
        read_json(&catalog_path).unwrap_or_default();
    let mut catalog = serde_json::Map::new();

    let experiments: Vec<Experiment> = if sync.experiments {
        let result = client.experiments(project_id).await;
        let fresh = result.as_ref().ok().cloned();
        match listed("experiments", result, &mut catalog, &previous, &mut report) {
            Some(_) => fresh.unwrap_or_default(),
            // The last good listing still names the experiments whose results to read.
            None => previous
                .get("experiments")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
        }
    } else {
        Vec::new()
    };
    report.experiments = experiments.len();
    if sync.feature_flags {
        let r = client.flags(project_id).await;
        report.flags = listed("flags", r, &mut catalog, &previous, &mut report).unwrap_or(0);
    }
    if sync.audiences {
        let r = client.audiences(project_id).await;
        report.audiences =
            listed("audiences", r, &mut catalog, &previous, &mut report).unwrap_or(0);
    }
    if sync.events {
        let r = client.events(project_id).await;
        report.events = listed("events", r, &mut catalog, &previous, &mut report).unwrap_or(0);
    }
    write_json(&catalog_path, &catalog)?;

    // Results: ask each running/concluded experiment; ask the 202s once more after a pause.
    report.not_running = experiments
        .iter()
        .filter(|e| !e.has_results())
        .map(|e| format!("{} ({})", experiment_name(e), e.status))
        .collect();
    let candidates: Vec<_> = experiments.iter().filter(|e| e.has_results()).collect();
    let mut computing = Vec::new();
    let now = now_ms();
    for exp in &candidates {
        match client.results(&exp.id).await {
            Ok(ResultsOutcome::Computing) => computing.push(*exp),
            Ok(ResultsOutcome::NoData) => {
                report.no_data.push(experiment_name(exp));
                if cache
                    .resolve(&exp.id, ResultsOutcome::NoData, now)
                    .is_none()
                {
                    report.results_no_data += 1;
                }
            }
            Ok(outcome) => {
                cache.resolve(&exp.id, outcome, now);
            }
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    if !computing.is_empty() {
        let names: Vec<String> = computing.iter().map(|e| experiment_name(e)).collect();
        tracing::info!(
            "project {}: results of {} still being computed by Optimizely (202); \
             asking again in {} s",
            project.name,
            names.join(", "),
            options.results_retry_delay.as_secs()
        );
        tokio::time::sleep(options.results_retry_delay).await;
        for exp in computing {
            match client.results(&exp.id).await {
                Ok(ResultsOutcome::Computing) => {
                    report.still_computing.push(experiment_name(exp));
                    if cache.get(&exp.id).is_none() {
                        report.results_computing += 1;
                    }
                }
                Ok(outcome) => {
                    if outcome == ResultsOutcome::NoData {
                        report.no_data.push(experiment_name(exp));
                    }
                    if cache.resolve(&exp.id, outcome, now_ms()).is_none() {
                        report.results_no_data += 1;
                    }
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
    }

    for exp in candidates {
        let Some(cached) = cache.get(&exp.id) else {
            continue;
        };
        report.results_ready += 1;
        if !config.brevo.mapping.experiment_variation {
            continue;
        }
        for winner in pick_winners(exp, &cached.results) {
            let name = list_name(&project.name, &winner);
            // A list failure is reported with the project and the run goes on.
            let list_id = match lists.ensure_list(&name).await {
                Ok(id) => id,
                Err(e) => {
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            let already = winners_state.lists.entry(name.clone()).or_default();
            let todo: Vec<String> = members
                .members(&project.name, &winner.experiment_id, &winner.variation_id)
                .into_iter()
                .filter(|u| !already.contains(u))
                .collect();
            let outcome = if todo.is_empty() {
                Default::default()
            } else {
                match lists.add_contacts(list_id, &todo).await {
                    Ok(o) => o,
                    Err(e) => {
                        report.errors.push(e.to_string());
                        continue;
                    }
                }
            };
            // A dry run remembers nothing: the real run must still add these contacts.
            if outcome.unknown == 0 && !lists.is_dry_run() {
                already.extend(todo);
            }
            tracing::info!(
                project = %project.name,
                experiment = %winner.experiment_key,
                variation = %winner.variation_key,
                list = %name,
                added = outcome.added,
                "{}",
                if lists.is_dry_run() {
                    "dry run: winner's list logged, nothing written to Brevo"
                } else {
                    "winner synced to Brevo"
                }
            );
            report.winners.push(WinnerReport {
                experiment_key: winner.experiment_key,
                variation_key: winner.variation_key,
                list_name: name,
                list_id,
                added: outcome.added,
                unknown: outcome.unknown,
            });
        }
    }
    Ok(report)
}

/// Runs forever: each project on its own cron schedule (one instance per slot when a fleet
/// store is configured, see [`super::lease::claim_run`]).
pub async fn run_scheduled<L: ListWriter>(config: &Config, lists: &L, options: &RunOptions) {
    let fleet = match &config.store {
        Some(store) => match store.clone().connect().await {
            Ok(fleet) => Some(fleet),
            Err(e) => {
                tracing::error!(error = %e, "fleet store unusable: every instance runs the REST sync");
                None
            }
        },
        None => None,
    };
    loop {
        let now = chrono::Utc::now();
        let Some((at, due)) = next_due(config, &now) else {
            tracing::warn!("no schedule ever matches again; stopping");
            return;
        };
        let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
        tracing::info!(next = %at, projects = ?due, "next REST sync");
        tokio::time::sleep(wait).await;
        if !super::lease::claim_run(fleet.as_ref(), &at, &due).await {
            // Past this slot before asking for the next one.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let mut one = config.clone();
        one.projects.retain(|p| due.contains(&p.name));
        match run_once(&one, lists, options).await {
            Ok(reports) => {
                for r in reports {
                    for line in r.summary().lines() {
                        tracing::info!("{line}");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "REST sync failed"),
        }
    }
}

/// The next run time and the projects due then.
pub fn next_due(
    config: &Config,
    now: &chrono::DateTime<chrono::Utc>,
) -> Option<(chrono::DateTime<chrono::Utc>, Vec<String>)> {
    let mut best: Option<(chrono::DateTime<chrono::Utc>, Vec<String>)> = None;
    for p in &config.projects {
        let Some(at) = p.sync.schedule.next_after(now) else {
            continue;
        };
        match &mut best {
            Some((t, names)) if *t == at => names.push(p.name.clone()),
            Some((t, _)) if *t < at => {}
            _ => best = Some((at, vec![p.name.clone()])),
        }
    }
    best
}

fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SyncJobError> {
    let io = |source| SyncJobError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_groups_projects() {
        let text = "connectors:\n  optimizely:\n    sdk_key: A\n    sync: {schedule: '0 */2 * * *'}\n    projects:\n      - {name: b, sdk_key: B, sync: {schedule: '30 * * * *'}}\n      - {name: c, sdk_key: C}\n";
        let config = Config::from_yaml(text, &|_| None).unwrap();
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let (at, due) = next_due(&config, &t("2026-11-27T23:10:00Z")).unwrap();
        assert_eq!(at, t("2026-11-27T23:30:00Z"));
        assert_eq!(due, ["b"]);
        let (at, due) = next_due(&config, &t("2026-11-27T23:40:00Z")).unwrap();
        assert_eq!(at, t("2026-11-28T00:00:00Z"));
        // c inherits the section's schedule.
        assert_eq!(due, ["default", "c"]);
    }
}
