//! What one project's run of `flagbridge sync` did: a JSON report (stdout of `sync --once`) and
//! the same in words ([`ProjectReport::summary`], on stderr and in the log).

use serde::Serialize;

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
    /// The project id, when set.
    pub project_id: Option<String>,
    /// Listings that failed this run; the last good ones were kept in the catalog.
    pub listings_kept: Vec<String>,
    /// Experiments that answered 204 (no data yet).
    pub no_data: Vec<String>,
    /// Experiments still computing (202) after the second ask.
    pub still_computing: Vec<String>,
    /// Experiments not running, so no results were asked (`key (status)`).
    pub not_running: Vec<String>,
    /// Brevo dry run: the winners' lists were logged, not written.
    pub dry_run: bool,
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

impl ProjectReport {
    /// The run in plain words, one topic per line; the first line names the project.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "project {}{}:",
            self.project,
            self.project_id
                .as_deref()
                .map(|id| format!(" (Optimizely project {id})"))
                .unwrap_or_default()
        );
        if let Some(why) = &self.skipped {
            out.push_str(&format!(" skipped: {why}"));
            return out;
        }
        let listed_any = self.experiments + self.flags + self.audiences + self.events > 0
            || self.errors.is_empty();
        if listed_any {
            out.push_str(&format!(
                "\n  listed {}, {}, {} and {}",
                count(self.experiments, "experiment"),
                count(self.flags, "flag"),
                count(self.audiences, "audience"),
                count(self.events, "event")
            ));
        }
        if !self.listings_kept.is_empty() {
            out.push_str(&format!(
                "\n  listing failed, last good list kept for: {}",
                self.listings_kept.join(", ")
            ));
        }
        out.push_str(&format!(
            "\n  results ready for {}",
            count(self.results_ready, "experiment")
        ));
        if !self.no_data.is_empty() {
            out.push_str(&format!(
                "\n  no data yet (204) for: {}",
                self.no_data.join(", ")
            ));
        }
        if !self.still_computing.is_empty() {
            out.push_str(&format!(
                "\n  still being computed (202), asked again next run: {}",
                self.still_computing.join(", ")
            ));
        }
        if !self.not_running.is_empty() {
            out.push_str(&format!(
                "\n  not running, so no results asked: {}",
                self.not_running.join(", ")
            ));
        }
        if self.winners.is_empty() {
            out.push_str("\n  no winner yet");
        }
        for w in &self.winners {
            if self.dry_run {
                out.push_str(&format!(
                    "\n  winner: {} -> {}: dry run, Brevo list \"{}\" would get {}",
                    w.experiment_key,
                    w.variation_key,
                    w.list_name,
                    count(w.added, "contact"),
                ));
                continue;
            }
            out.push_str(&format!(
                "\n  winner: {} -> {}: Brevo list \"{}\" (id {}): {} added{}",
                w.experiment_key,
                w.variation_key,
                w.list_name,
                w.list_id,
                count(w.added, "contact"),
                if w.unknown > 0 {
                    format!(
                        ", {} not in Brevo yet (tried again next run)",
                        count(w.unknown, "contact")
                    )
                } else {
                    String::new()
                }
            ));
        }
        for e in &self.errors {
            out.push_str(&format!("\n  error: {e}"));
        }
        out
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_in_words() {
        let r = ProjectReport {
            project: "web".into(),
            project_id: Some("12".into()),
            experiments: 3,
            flags: 1,
            results_ready: 1,
            no_data: vec!["fresh".into()],
            not_running: vec!["draft (paused)".into()],
            winners: vec![WinnerReport {
                experiment_key: "checkout".into(),
                variation_key: "blue".into(),
                list_name: "flagbridge web checkout winner blue".into(),
                list_id: 4,
                added: 2,
                unknown: 1,
            }],
            ..Default::default()
        };
        let s = r.summary();
        for want in [
            "project web (Optimizely project 12):",
            "listed 3 experiments, 1 flag, 0 audiences and 0 events",
            "results ready for 1 experiment",
            "no data yet (204) for: fresh",
            "not running, so no results asked: draft (paused)",
            "winner: checkout -> blue: Brevo list \"flagbridge web checkout winner blue\" (id 4): 2 contacts added, 1 contact not in Brevo yet",
        ] {
            assert!(s.contains(want), "{want}\n{s}");
        }
        let skipped = ProjectReport {
            project: "m".into(),
            skipped: Some("no access_token".into()),
            ..Default::default()
        };
        assert_eq!(skipped.summary(), "project m: skipped: no access_token");
    }
}
