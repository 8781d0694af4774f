//! `flagbridge decide --datafile FILE --cases CASES.jsonl`: decides JSONL cases offline and
//! prints one JSON line per decision (format: `datafile-fixtures/README.md`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use flagbridge_engine::{DatafileError, ProjectConfig};

use super::cases::run_case_line;

/// Why `flagbridge decide` could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    /// The datafile could not be read.
    #[error("{path}: cannot read datafile: {source}", path = path.display())]
    ReadDatafile {
        /// The datafile path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The datafile was read but is not a valid datafile.
    #[error("{path}: invalid datafile: {source}", path = path.display())]
    InvalidDatafile {
        /// The datafile path.
        path: PathBuf,
        /// What is wrong with it.
        source: DatafileError,
    },
    /// The cases could not be read (or the output not written).
    #[error("{name}: cannot read cases: {source}")]
    Cases {
        /// The cases path, or `-` for stdin.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

/// Reads and compiles a datafile.
pub fn load_datafile(path: &Path) -> Result<ProjectConfig, DecideError> {
    let bytes = std::fs::read(path).map_err(|source| DecideError::ReadDatafile {
        path: path.to_path_buf(),
        source,
    })?;
    ProjectConfig::from_slice(&bytes).map_err(|source| DecideError::InvalidDatafile {
        path: path.to_path_buf(),
        source,
    })
}

/// What a `decide` run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecideSummary {
    /// Cases run (non-empty lines).
    pub cases: usize,
    /// Cases that gave an error line (`{"case": N, "error": ...}`).
    pub failed: usize,
}

/// Runs every non-empty line of `cases` (a path, or `-` for stdin) and writes the output lines
/// to `out`. A malformed case line gives an error line and the run goes on; the summary counts
/// them (the command then exits non-zero).
pub fn run(
    datafile: &Path,
    cases: &str,
    out: &mut dyn Write,
) -> Result<DecideSummary, DecideError> {
    let config = load_datafile(datafile)?;
    let cases_err = |source| DecideError::Cases {
        name: cases.to_string(),
        source,
    };
    let reader: Box<dyn BufRead> = if cases == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(cases).map_err(cases_err)?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut n = 0;
    let mut summary = DecideSummary::default();
    for line in reader.lines() {
        let line = line.map_err(cases_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let mut failed = false;
        for value in run_case_line(&config, n, &line) {
            failed |= value.get("error").is_some();
            writeln!(out, "{value}").map_err(DecideError::Output)?;
        }
        summary.failed += usize::from(failed);
        n += 1;
    }
    summary.cases = n;
    out.flush().map_err(DecideError::Output)?;
    Ok(summary)
}
