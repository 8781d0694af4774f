//! One run of the scheduled REST sync, and the cron loop around it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lists::ListWriter;
use super::membership::{MembershipStore, MEMBERSHIP_FILE};
use crate::config::{Config, ProjectSettings};
use crate::rest::ratelimit::Window;
use crate::rest::results::{ResultsCache, CACHE_FILE};
use crate::rest::{pick_winners, RestClient, RestError, ResultsOutcome, Winner};

/// File (in the state directory) recording which contacts each winners' list already has.
pub const WINNERS_FILE: &str = "winners-state.json";
/// Default wait before asking again for results that answered 202.
pub const DEFAULT_RESULTS_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Catalog file prefix (`catalog-<project>.json`): what the last run listed.
pub const CATALOG_PREFIX: &str = "catalog-";

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
    /// Replaces the documented REST pacing (all three limiters) when set; default None.
    /// For tests against local fakes.
    pub rest_pacing: Option<Vec<Window>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            results_retry_delay: DEFAULT_RESULTS_RETRY_DELAY,
            rest_pacing: None,
        }
    }
}

/// What one project's run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectReport {
    /// Project name.
    pub project: String,
    /// Why it was skipped, if it was.
    pub skipped: Option<String>,
    /// REST failures (listing or results), by message.
    pub errors: Vec<String>,
    /// Experiments listed.
    pub experiments: usize,
    /// Flags listed.
    pub flags: usize,
    /// Audiences listed.
    pub audiences: usize,
    /// Events listed.
    pub events: usize,
    /// Experiments whose results were ready (fresh or cached).
    pub results_ready: usize,
    /// Experiments still computing after the retry.
    pub results_computing: usize,
    /// Experiments without data.
    pub results_no_data: usize,
    /// Winners found.
    pub winners: Vec<WinnerReport>,
}

/// One winner and its list.
#[derive(Debug, Clone, Serialize)]
pub struct WinnerReport {
    /// Experiment key.
    pub experiment_key: String,
    /// Variation key.
    pub variation_key: String,
    /// Brevo list name.
    pub list_name: String,
    /// Brevo list id.
    pub list_id: u64,
    /// Contacts added this run.
    pub added: usize,
    /// Contacts Brevo did not know (retried next run).
    pub unknown: usize,
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
    for project in &config.projects {
        let report = run_project(
            config,
            project,
            lists,
            options,
            &members,
            &mut cache,
            &mut winners_state,
        )
        .await;
        // Keep what was done even if a later project fails.
        cache.save().map_err(|source| SyncJobError::Io {
            path: state_dir.join(CACHE_FILE),
            source,
        })?;
        write_json(&winners_path, &winners_state)?;
        reports.push(report?);
    }
    Ok(reports)
}

async fn run_project<L: ListWriter>(
    config: &Config,
    project: &ProjectSettings,
    lists: &L,
    options: &RunOptions,
    members: &MembershipStore,
    cache: &mut ResultsCache,
    winners_state: &mut WinnersState,
) -> Result<ProjectReport, SyncJobError> {
    let mut report = ProjectReport {
        project: project.name.clone(),
        ..Default::default()
    };
    let (Some(token), Some(project_id)) = (&project.access_token, &project.project_id) else {
        report.skipped = Some("no access_token or project_id".into());
        return Ok(report);
    };
    let mut builder = RestClient::builder(config.urls.rest.clone(), config.urls.flags.clone());
    if let Some(pacing) = &options.rest_pacing {
        builder = builder
            .v2_limits(pacing.clone())
            .flags_limits(pacing.clone())
            .results_limits(pacing.clone());
    }
    let client = match builder.build(token.clone()) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(e.to_string());
            return Ok(report);
        }
    };
    let sync = &project.sync;
    let mut catalog = serde_json::Map::new();

    let experiments = if sync.experiments {
        note(&mut report.errors, client.experiments(project_id).await)
    } else {
        Vec::new()
    };
    report.experiments = experiments.len();
    catalog.insert("experiments".into(), to_value(&experiments));
    if sync.feature_flags {
        let flags = note(&mut report.errors, client.flags(project_id).await);
        report.flags = flags.len();
        catalog.insert("flags".into(), to_value(&flags));
    }
    if sync.audiences {
        let audiences = note(&mut report.errors, client.audiences(project_id).await);
        report.audiences = audiences.len();
        catalog.insert("audiences".into(), to_value(&audiences));
    }
    if sync.events {
        let events = note(&mut report.errors, client.events(project_id).await);
        report.events = events.len();
        catalog.insert("events".into(), to_value(&events));
    }
    let catalog_path = config
        .state_dir
        .join(format!("{CATALOG_PREFIX}{}.json", project.name));
    write_json(&catalog_path, &catalog)?;

    // Results: ask each running/concluded experiment; ask the 202s once more after a pause.
    let candidates: Vec<_> = experiments.iter().filter(|e| e.has_results()).collect();
    let mut computing = Vec::new();
    let now = now_ms();
    for exp in &candidates {
        match client.results(&exp.id).await {
            Ok(ResultsOutcome::Computing) => computing.push(*exp),
            Ok(ResultsOutcome::NoData) => {
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
        tokio::time::sleep(options.results_retry_delay).await;
        for exp in computing {
            match client.results(&exp.id).await {
                Ok(ResultsOutcome::Computing) => {
                    if cache.get(&exp.id).is_none() {
                        report.results_computing += 1;
                    }
                }
                Ok(outcome) => {
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
            if outcome.unknown == 0 {
                already.extend(todo);
            }
            tracing::info!(
                project = %project.name,
                experiment = %winner.experiment_key,
                variation = %winner.variation_key,
                list = %name,
                added = outcome.added,
                "winner synced to Brevo"
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

/// Runs forever: each project on its own cron schedule.
pub async fn run_scheduled<L: ListWriter>(config: &Config, lists: &L, options: &RunOptions) {
    loop {
        let now = chrono::Utc::now();
        let Some((at, due)) = next_due(config, &now) else {
            tracing::warn!("no schedule ever matches again; stopping");
            return;
        };
        let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
        tracing::info!(next = %at, projects = ?due, "next REST sync");
        tokio::time::sleep(wait).await;
        let mut one = config.clone();
        one.projects.retain(|p| due.contains(&p.name));
        match run_once(&one, lists, options).await {
            Ok(reports) => {
                for r in reports {
                    tracing::info!(report = ?r, "REST sync done");
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

fn note<T>(errors: &mut Vec<String>, r: Result<Vec<T>, RestError>) -> Vec<T> {
    r.unwrap_or_else(|e| {
        errors.push(e.to_string());
        Vec::new()
    })
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
