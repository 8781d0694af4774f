//! `flagbridge backfill --users FILE.jsonl`: decide every flag for each user in a file and feed
//! the Brevo sync (and the assignment record), with a progress bar and a checkpoint so an
//! interrupted run resumes where it stopped.
//!
//! Each line is an Agent-style user: `{"userId": "u1", "userAttributes": {"email": "..."}}`.
//! No impressions are sent to Optimizely (`DISABLE_DECISION_EVENT`): a backfill must not count
//! as traffic in experiment results.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flagbridge_engine::{AttributeValue, DecideOption, DecideOptions, UserContext};
use serde::{Deserialize, Serialize};

use crate::connector::config::Config;
use crate::connector::serve::{Runtime, RuntimeOptions, ServeError};

/// Default number of users between checkpoints (each checkpoint flushes the Brevo outbox first).
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;

/// Decisions the backfill lets wait for the Brevo worker before it pauses: well under one
/// thread's hand-off ring (`handoff::MAX_RING_CAPACITY`), so a fast backfill never overflows it.
const MAX_BACKLOG: u64 = 1_024;

/// Longest pause for the worker to catch up, per user (a stuck worker slows the backfill down;
/// it does not stop it).
const MAX_BACKLOG_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until the Brevo worker has folded in all but [`MAX_BACKLOG`] of the decisions queued.
async fn wait_for_brevo(runtime: &Runtime) {
    let Some(brevo) = &runtime.brevo else {
        return;
    };
    let backlog = || {
        let c = brevo.counters();
        c.decisions_queued.saturating_sub(c.decisions_processed)
    };
    let started = std::time::Instant::now();
    while backlog() > MAX_BACKLOG && started.elapsed() < MAX_BACKLOG_WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Why a backfill stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackfillError {
    /// The users file or the checkpoint could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a user.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The users file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong, with the field path.
        message: String,
    },
    /// No such project / several projects and none chosen.
    #[error("{0}")]
    Project(String),
    /// Starting the clients or the Brevo sync failed.
    #[error(transparent)]
    Start(#[from] ServeError),
}

/// Where a run stands: the byte offset and line number of the next unprocessed line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Byte offset of the next line.
    pub offset: u64,
    /// Lines done so far (1-based number of the next line minus one).
    pub lines: u64,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Project name; needed when the config has several projects.
    pub project: Option<String>,
    /// Checkpoint file; default `<state_dir>/backfill-<file name>.checkpoint.json`.
    pub checkpoint: Option<PathBuf>,
    /// Users between checkpoints; default [`DEFAULT_CHECKPOINT_EVERY`].
    pub checkpoint_every: u64,
    /// Stop after this many users (tests, trial runs); default none.
    pub limit: Option<u64>,
    /// Draw a progress bar on stderr (when it is a terminal); default true.
    pub progress: bool,
    /// The progress bar to draw on (the binary routes its log lines through it so they never
    /// tear it); default none: a bar of its own.
    pub bar: Option<indicatif::ProgressBar>,
    /// When set (by a Ctrl-C handler), the run stops before the next line, flushes, writes the
    /// checkpoint and returns with `interrupted`; default none.
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            project: None,
            checkpoint: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            limit: None,
            progress: true,
            bar: None,
            interrupt: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// Line the run started at (0 = from the top).
    pub resumed_at_line: u64,
    /// Users decided in this run.
    pub users: u64,
    /// Flag decisions made in this run.
    pub decisions: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// True when the whole file is done.
    pub finished: bool,
    /// Decisions the Brevo sync could not queue (its queue was full); 0 unless the Brevo
    /// worker stayed stuck for longer than the backfill waits for it.
    pub brevo_overflow: u64,
    /// Users decided but not written to Brevo: they lack the identity attribute
    /// (`field_mapping.user_id`, default `email`) or its value is not a non-empty string.
    pub users_without_identity: u64,
    /// True when the run was stopped by [`BackfillOptions::interrupt`] (the checkpoint is
    /// written: the same command resumes).
    pub interrupted: bool,
}

impl BackfillReport {
    /// The run in words (one line), naming the identity attribute and, when it stopped early,
    /// how to resume.
    pub fn summary(&self, identity_attribute: Option<&str>, checkpoint: &Path) -> String {
        let mut out = format!(
            "backfill: {} user{} decided ({} flag decisions)",
            self.users,
            if self.users == 1 { "" } else { "s" },
            self.decisions
        );
        if self.resumed_at_line > 0 {
            out.push_str(&format!(", resumed after line {}", self.resumed_at_line));
        }
        if self.users_without_identity > 0 {
            out.push_str(&format!(
                "; {} without the `{}` attribute: decided, not written to Brevo",
                self.users_without_identity,
                identity_attribute.unwrap_or("identity")
            ));
        }
        if self.brevo_overflow > 0 {
            out.push_str(&format!(
                "; {} decisions not queued for Brevo (worker stuck)",
                self.brevo_overflow
            ));
        }
        if self.interrupted {
            out.push_str(&format!(
                "; interrupted: run the same command again to resume (checkpoint {})",
                checkpoint.display()
            ));
        } else if self.finished {
            out.push_str("; finished");
        } else {
            out.push_str(&format!(
                "; stopped early: run the same command again to resume (checkpoint {})",
                checkpoint.display()
            ));
        }
        out
    }
}

/// Whether the user carries the contact identity the Brevo sync needs (a non-empty string
/// attribute; `None` = the Optimizely user id, always present).
fn has_identity(user: &UserContext, attribute: Option<&str>) -> bool {
    match attribute {
        None => true,
        Some(name) => {
            matches!(user.attribute(name), Some(AttributeValue::String(s)) if !s.is_empty())
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserLine {
    user_id: String,
    #[serde(default)]
    user_attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The checkpoint path used when none is given.
pub fn default_checkpoint(config: &Config, users: &Path) -> PathBuf {
    let name = users
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "users".into());
    config
        .state_dir
        .join(format!("backfill-{name}.checkpoint.json"))
}

fn read_checkpoint(path: &Path) -> Result<Checkpoint, BackfillError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BackfillError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
        Err(source) => Err(BackfillError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_checkpoint(path: &Path, cp: Checkpoint) -> Result<(), BackfillError> {
    let io = |source| BackfillError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(&cp).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Parses one line into a user (errors name the field).
fn parse_user(line: &str) -> Result<UserContext, String> {
    let de = &mut serde_json::Deserializer::from_str(line);
    let u: UserLine = serde_path_to_error::deserialize(de).map_err(|e| {
        let p = e.path().to_string();
        if p == "." || p.starts_with('?') {
            e.inner().to_string()
        } else {
            format!("{p}: {}", e.inner())
        }
    })?;
    if u.user_id.is_empty() {
        return Err("userId: must not be empty".into());
    }
    let mut user = UserContext::new(u.user_id);
    for (k, v) in u.user_attributes.iter().flatten() {
        let v = AttributeValue::try_from(v)
            .map_err(|e| format!("userAttributes.{k}: {} values are not supported", e.kind))?;
        user.set_attribute(k.clone(), v);
    }
    Ok(user)
}

/// Runs (or resumes) a backfill.
pub async fn run(
    mut config: Config,
    users_path: &Path,
    options: BackfillOptions,
) -> Result<BackfillReport, BackfillError> {
    let project = match &options.project {
        Some(name) => config
            .projects
            .iter()
            .find(|p| &p.name == name)
            .cloned()
            .ok_or_else(|| BackfillError::Project(format!("no project named `{name}`")))?,
        None if config.projects.len() == 1 => config.projects[0].clone(),
        None => {
            return Err(BackfillError::Project(format!(
                "several projects ({}): choose one with --project",
                config.project_names()
            )))
        }
    };
    let checkpoint_path = options
        .checkpoint
        .clone()
        .unwrap_or_else(|| default_checkpoint(&config, users_path));
    let start = read_checkpoint(&checkpoint_path)?;

    let io = |source| BackfillError::Io {
        path: users_path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(users_path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    file.seek(SeekFrom::Start(start.offset)).map_err(io)?;
    let mut reader = BufReader::new(file);

    let identity_attribute = config.brevo.identity_attribute.clone();
    config.projects = vec![project.clone()];
    config.events.disabled = true;
    let runtime = Runtime::start(config, RuntimeOptions::default()).await?;
    let Some(p) = runtime.ordered.first().cloned() else {
        return Err(BackfillError::Project("no project".into()));
    };

    let bar = match (&options.bar, options.progress) {
        (_, false) => indicatif::ProgressBar::hidden(),
        (Some(bar), true) => {
            bar.set_length(total);
            bar.clone()
        }
        (None, true) => indicatif::ProgressBar::new(total),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(start.offset);
    if start.lines > 0 {
        bar.println(format!(
            "resuming {} at line {} (byte {})",
            users_path.display(),
            start.lines + 1,
            start.offset
        ));
    }

    let options_decide = DecideOptions::NONE.with(DecideOption::DisableDecisionEvent);
    let mut cp = start;
    let mut report = BackfillReport {
        resumed_at_line: start.lines,
        ..Default::default()
    };
    let mut since_checkpoint = 0;
    let started = std::time::Instant::now();
    let mut line = String::new();
    loop {
        if options.limit.is_some_and(|l| report.users >= l) {
            break;
        }
        if options
            .interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            report.interrupted = true;
            break;
        }
        line.clear();
        let n = reader.read_line(&mut line).map_err(io)? as u64;
        if n == 0 {
            report.finished = true;
            break;
        }
        let line_no = cp.lines + 1;
        if line.trim().is_empty() {
            report.blank += 1;
        } else {
            let user = parse_user(line.trim()).map_err(|message| BackfillError::Line {
                path: users_path.to_path_buf(),
                line: line_no,
                message,
            })?;
            report.decisions += p.client.decide_all(&user, options_decide).len() as u64;
            report.users += 1;
            if !has_identity(&user, identity_attribute.as_deref()) {
                report.users_without_identity += 1;
            }
            since_checkpoint += 1;
            wait_for_brevo(&runtime).await;
        }
        cp.offset += n;
        cp.lines += 1;
        bar.set_position(cp.offset);
        if since_checkpoint >= options.checkpoint_every.max(1) {
            runtime.flush().await;
            write_checkpoint(&checkpoint_path, cp)?;
            since_checkpoint = 0;
            let rate = report.users as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{} users, {rate:.0} users/s", report.users));
        }
    }
    if let Some(brevo) = &runtime.brevo {
        report.brevo_overflow = brevo.counters().queue_overflow;
    }
    runtime.close().await;
    write_checkpoint(&checkpoint_path, cp)?;
    if report.interrupted {
        bar.abandon_with_message(format!("{} users, interrupted", report.users));
    } else {
        bar.finish_with_message(format!("{} users", report.users));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_summary() {
        let with = parse_user(r#"{"userId":"u1","userAttributes":{"email":"a@b.c"}}"#).unwrap();
        let without = parse_user(r#"{"userId":"u2","userAttributes":{"plan":"pro"}}"#).unwrap();
        let empty = parse_user(r#"{"userId":"u3","userAttributes":{"email":""}}"#).unwrap();
        assert!(has_identity(&with, Some("email")));
        assert!(!has_identity(&without, Some("email")));
        assert!(!has_identity(&empty, Some("email")));
        assert!(has_identity(&without, None));
        let r = BackfillReport {
            users: 10,
            decisions: 40,
            users_without_identity: 3,
            interrupted: true,
            ..Default::default()
        };
        let s = r.summary(Some("email"), Path::new("state/backfill-u.checkpoint.json"));
        assert_eq!(
            s,
            "backfill: 10 users decided (40 flag decisions); 3 without the `email` attribute: \
             decided, not written to Brevo; interrupted: run the same command again to resume \
             (checkpoint state/backfill-u.checkpoint.json)"
        );
    }

    #[test]
    fn user_lines() {
        let u = parse_user(r#"{"userId":"u1","userAttributes":{"plan":"pro","n":3}}"#).unwrap();
        assert_eq!(u.user_id(), "u1");
        assert_eq!(u.attribute("n"), Some(&AttributeValue::Int(3)));
        let cases = [
            (r#"{"userAttributes":{}}"#, "missing field `userId`"),
            (r#"{"userId":""}"#, "userId: must not be empty"),
            (r#"{"userId":7}"#, "userId: invalid type"),
            (
                r#"{"userId":"u","userAttributes":{"x":{}}}"#,
                "userAttributes.x: object values",
            ),
            ("not json", "expected"),
        ];
        for (line, want) in cases {
            let err = parse_user(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
