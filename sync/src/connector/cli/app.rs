//! The `flagbridge` command line: dispatch of each subcommand, logging, signals.

use std::path::Path;
use std::process::ExitCode;

use crate::connector::config::{Config, ContactIdentityKind};
use crate::connector::scheduled::{self, BrevoLists, DryRunLists, RunOptions};
use clap::Parser;

use super::args::{Cli, Command};

/// Runs the `flagbridge` command line with the process arguments; the exit code to return.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decide {
            datafile,
            cases,
            remote: None,
            ..
        } => decide(&datafile, &cases),
        Command::Decide {
            datafile,
            cases,
            remote: Some(url),
            cmab_cache_size,
            cmab_cache_ttl,
            odp_cache_size,
            odp_cache_timeout,
            no_odp,
        } => {
            let mut settings = crate::connector::cli::remote::RemoteSettings::new(url);
            settings.cmab_cache_size = cmab_cache_size;
            settings.cmab_cache_ttl = std::time::Duration::from_millis(cmab_cache_ttl);
            settings.odp_cache_size = odp_cache_size;
            settings.odp_cache_ttl = std::time::Duration::from_millis(odp_cache_timeout);
            settings.no_odp = no_odp;
            decide_remote(&datafile, &cases, &settings)
        }
        Command::Serve {
            config,
            listen,
            with_sync,
        } => serve(config.as_deref(), listen, with_sync),
        Command::CheckConfig { file } => check_config(&file),
        Command::Events { store, resend } => events(&store, resend),
        Command::Backfill {
            config,
            users,
            project,
            checkpoint,
            checkpoint_every,
        } => with_config(&config, |c| {
            run_async(async move {
                // Ctrl-C stops before the next user; the run flushes and writes its checkpoint.
                let interrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = std::sync::Arc::clone(&interrupt);
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                });
                let checkpoint_path = checkpoint
                    .clone()
                    .unwrap_or_else(|| crate::connector::backfill::default_checkpoint(&c, &users));
                let identity = c.brevo.identity_attribute.clone();
                let bar = PROGRESS
                    .get_or_init(|| indicatif::ProgressBar::new(0))
                    .clone();
                let options = crate::connector::backfill::BackfillOptions {
                    project,
                    checkpoint,
                    checkpoint_every,
                    bar: Some(bar),
                    interrupt: Some(interrupt),
                    ..Default::default()
                };
                let result = crate::connector::backfill::run(c, &users, options).await;
                if PROGRESS.get().is_some_and(|bar| !bar.is_hidden()) {
                    eprintln!(); // below the finished bar
                }
                match result {
                    Ok(report) => {
                        println!("{}", serde_json::to_string(&report).unwrap_or_default());
                        eprintln!("{}", report.summary(identity.as_deref(), &checkpoint_path));
                        if report.interrupted {
                            // 128 + SIGINT, as shells report an interrupted command.
                            ExitCode::from(130)
                        } else {
                            ExitCode::SUCCESS
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }),
        Command::Sync { config, once } => with_config(&config, |c| run_async(sync(c, once))),
    }
}

fn events(store: &Path, resend: Option<Vec<i64>>) -> ExitCode {
    if !store.exists() {
        eprintln!("error: --store {}: no such file", store.display());
        return ExitCode::from(2);
    }
    let result = match resend {
        Some(ids) => {
            let ids = (!ids.is_empty()).then_some(ids);
            crate::events::resend_dead_letters(store, ids.as_deref()).map(|moved| {
                println!("{moved} events moved back to the queue; they are sent at the next start");
            })
        }
        None => crate::events::dead_letters(store).map(|letters| {
            for letter in &letters {
                println!("{}", serde_json::to_string(letter).unwrap_or_default());
            }
            eprintln!("{} dead letters", letters.len());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn with_config(path: &Path, f: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            init_logging(&config);
            f(config)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The progress bar on screen (backfill), if any: log lines are printed above it.
static PROGRESS: std::sync::OnceLock<indicatif::ProgressBar> = std::sync::OnceLock::new();

/// Log output to stderr, one event at a time; while a progress bar is drawn, each line is
/// printed with the bar suspended, so log lines never tear it.
struct LogWriter;

/// One log event's bytes, written out when the event is done.
struct LogLine(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let out = || {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &self.0);
        };
        match PROGRESS.get() {
            Some(bar) if !bar.is_hidden() && !bar.is_finished() => bar.suspend(out),
            _ => out(),
        }
    }
}

fn init_logging(config: &Config) {
    let level = if config.logging.debug {
        "debug"
    } else {
        config.logging.level.as_str()
    };
    let mut directives = level.to_string();
    if config.logging.log_decisions {
        directives.push_str(",crate::connector::serve::bridge=debug");
    }
    if config.logging.log_events {
        directives.push_str(",crate::events=debug");
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn run_async(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn sync(config: Config, once: bool) -> ExitCode {
    let options = RunOptions {
        results_retry_delay: std::time::Duration::from_secs(
            config.rest_rate_limit.results_retry_secs,
        ),
        ..RunOptions::default()
    };
    let brevo = &config.brevo;
    match (&brevo.api_key, brevo.dry_run) {
        (Some(key), false) => {
            let lists = match BrevoLists::new(
                brevo.base_url.clone(),
                key.clone(),
                brevo.winners_folder_id,
                brevo.rate_limit.per_second,
            ) {
                Ok(l) if brevo.contact_identity == ContactIdentityKind::Email => l.by_email(),
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            sync_with(&config, &lists, &options, once).await
        }
        _ => {
            eprintln!("warning: connectors.brevo: dry run: winners' lists are logged, not written");
            sync_with(&config, &DryRunLists::new(), &options, once).await
        }
    }
}

async fn sync_with<L: scheduled::ListWriter>(
    config: &Config,
    lists: &L,
    options: &RunOptions,
    once: bool,
) -> ExitCode {
    if !once {
        scheduled::run_scheduled(config, lists, options).await;
        return ExitCode::SUCCESS;
    }
    match scheduled::run_once(config, lists, options).await {
        Ok(reports) => {
            let mut failed = false;
            for r in &reports {
                match serde_json::to_string(r) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("error: {e}"),
                }
                eprintln!("{}", r.summary());
                failed |= !r.errors.is_empty();
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn decide(datafile: &Path, cases: &str) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = crate::connector::cli::decide::run(datafile, cases, &mut out);
    decide_exit(result, out)
}

/// The exit code of a `decide` run: 0, 1 when a case failed (said on stderr after the output
/// is flushed), 2 when the run could not be made.
fn decide_exit(
    result: Result<
        crate::connector::cli::decide::DecideSummary,
        crate::connector::cli::decide::DecideError,
    >,
    out: impl std::io::Write,
) -> ExitCode {
    match result {
        Ok(summary) if summary.failed > 0 => {
            drop(out);
            eprintln!(
                "error: {} of {} cases failed (their output lines hold \"error\")",
                summary.failed, summary.cases
            );
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn decide_remote(
    datafile: &Path,
    cases: &str,
    settings: &crate::connector::cli::remote::RemoteSettings,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = runtime.block_on(crate::connector::cli::remote::run_remote(
        datafile, cases, settings, &mut out,
    ));
    decide_exit(result, out)
}

fn serve(config: Option<&Path>, listen: Option<std::net::SocketAddr>, with_sync: bool) -> ExitCode {
    let (mut config, embedded) = match config {
        Some(path) => match Config::load(path) {
            Ok(c) => (c, false),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => match crate::connector::serve::embedded_config() {
            Ok(c) => (c, true),
            Err(e) => {
                eprintln!("error: embedded config: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let from_flag = listen.is_some();
    if let Some(addr) = listen {
        config.server.listen = addr;
    }
    init_logging(&config);
    run_async(async move {
        let addr = config.server.listen;
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    " (another program, maybe another flagbridge serve, uses this port: \
                     pick a free one with --listen HOST:PORT)"
                } else {
                    ""
                };
                let source = if from_flag {
                    "--listen"
                } else {
                    "server.listen (or --listen)"
                };
                eprintln!("error: {source} {addr}: cannot bind: {e}{hint}");
                return ExitCode::FAILURE;
            }
        };
        if embedded {
            eprintln!(
                "flagbridge serve: no --config given: serving the bundled example datafile \
                 (SDK key `{}`) on http://{addr}, Brevo in dry run (requests written to {}), \
                 no events sent to Optimizely",
                config
                    .projects
                    .first()
                    .map(|p| p.sdk_key.as_str())
                    .unwrap_or(""),
                config.state_dir.join("brevo-dry-run.jsonl").display()
            );
        }
        let handle =
            match crate::connector::serve::start(config, listener, Default::default()).await {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
        eprintln!(
            "flagbridge serve: listening on http://{}",
            handle.local_addr()
        );
        let background = with_sync.then(|| {
            let config = handle.runtime().config.clone();
            // Its own task: listing and results calls never hold up decisions.
            tokio::spawn(async move {
                sync(config, false).await;
            })
        });
        shutdown_signal().await;
        eprintln!("flagbridge serve: shutting down (flushing events and the Brevo outbox)");
        if let Some(task) = background {
            task.abort();
        }
        match handle.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: ok ({} project{}: {})",
                file.display(),
                config.projects.len(),
                if config.projects.len() == 1 { "" } else { "s" },
                config.project_names()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
