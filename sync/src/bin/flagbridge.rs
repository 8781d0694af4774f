//! The `flagbridge` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Optimizely Feature Experimentation decisions, carried into Brevo.
#[derive(Parser)]
#[command(name = "flagbridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decide JSONL cases offline against a datafile; one JSON line per decision on stdout.
    Decide {
        /// The datafile (JSON).
        #[arg(long)]
        datafile: PathBuf,
        /// The JSONL cases file, `-` for stdin.
        #[arg(long)]
        cases: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decide { datafile, cases } => decide(&datafile, &cases),
    }
}

fn decide(datafile: &std::path::Path, cases: &str) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match flagbridge_sync::cli::decide::run(datafile, cases, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
