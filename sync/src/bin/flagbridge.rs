//! The `flagbridge` command line.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flagbridge_sync::config::{Config, ContactIdentityKind};
use flagbridge_sync::scheduled::{self, BrevoLists, DryRunLists, RunOptions};

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
        /// Decide through the async API against this prediction + ODP service (CMAB at
        /// `URL/predict/{ruleId}`, ODP at `URL`), accepting `decide_remote.mjs`'s case
        /// extensions and writing its `#remote` lines (requests read from `URL/_log`).
        #[arg(long)]
        remote: Option<String>,
        /// CMAB cache entries with --remote (0 = the default, 10000).
        #[arg(long, default_value_t = flagbridge_sync::remote::DEFAULT_CMAB_CACHE_SIZE)]
        cmab_cache_size: usize,
        /// CMAB cache TTL in milliseconds with --remote (0 = the default, 30 minutes).
        #[arg(long, default_value_t = 1_800_000)]
        cmab_cache_ttl: u64,
        /// ODP segment cache entries with --remote.
        #[arg(long, default_value_t = flagbridge_sync::remote::DEFAULT_SEGMENTS_CACHE_SIZE)]
        odp_cache_size: usize,
        /// ODP segment cache TTL in milliseconds with --remote (default 10 minutes).
        #[arg(long, default_value_t = 600_000)]
        odp_cache_timeout: u64,
        /// With --remote: no ODP manager (segment fetches answer none, without a request).
        #[arg(long)]
        no_odp: bool,
    },
    /// Serve the Optimizely Agent API (decide, track, config, datafile, batch), the datafile
    /// webhook, /health and /metrics. Without --config: the bundled example datafile on
    /// 127.0.0.1:8080 with Brevo in dry run.
    Serve {
        /// The YAML config file.
        #[arg(long, short, env = "FLAGBRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, `HOST:PORT` (`127.0.0.1:8080`, `localhost:9000`, `0.0.0.0:80`);
        /// overrides `server.listen`.
        #[arg(long, value_parser = parse_listen)]
        listen: Option<std::net::SocketAddr>,
        /// Also run the scheduled REST sync (as `flagbridge sync`) in the background.
        #[arg(long)]
        with_sync: bool,
    },
    /// Decide every flag for each user of a JSONL file (`{"userId": ..., "userAttributes": {...}}`
    /// per line) and feed the Brevo sync; resumable (checkpoint of the line offset). Sends no
    /// impressions to Optimizely.
    Backfill {
        /// The YAML config file.
        #[arg(long, short, env = "FLAGBRIDGE_CONFIG")]
        config: PathBuf,
        /// The users file (JSON lines).
        #[arg(long)]
        users: PathBuf,
        /// Project name (needed when the config has several).
        #[arg(long)]
        project: Option<String>,
        /// Checkpoint file [default: STATE_DIR/backfill-USERS.checkpoint.json, where USERS is the
        /// users file's name].
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Users between checkpoints (each flushes the Brevo outbox first).
        #[arg(long, default_value_t = flagbridge_sync::backfill::DEFAULT_CHECKPOINT_EVERY)]
        checkpoint_every: u64,
    },
    /// Show the event dead letters of a store (events logx refused with 4xx, or that passed
    /// the age limit), or move them back to the queue with --resend. The process using the
    /// store must be stopped; `serve` keeps each project's store in
    /// STATE_DIR/events-PROJECT.sqlite.
    Events {
        /// The event store (SQLite file).
        #[arg(long)]
        store: PathBuf,
        /// Move dead letters back to the queue (all, or the ids given); they are sent at the
        /// next start of a client on this store.
        #[arg(long, num_args = 0..)]
        resend: Option<Vec<i64>>,
    },
    /// Validate a config file without starting anything.
    CheckConfig {
        /// The YAML config file.
        file: PathBuf,
    },
    /// The scheduled REST sync: list experiments, flags, audiences and events, read results,
    /// and fill one Brevo list per winning variation.
    Sync {
        /// The YAML config file.
        #[arg(long, short, env = "FLAGBRIDGE_CONFIG")]
        config: PathBuf,
        /// Run once now and exit instead of following the cron schedules.
        #[arg(long)]
        once: bool,
    },
}

fn main() -> ExitCode {
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
            let mut settings = flagbridge_sync::cli::remote::RemoteSettings::new(url);
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
                    .unwrap_or_else(|| flagbridge_sync::backfill::default_checkpoint(&c, &users));
                let identity = c.brevo.identity_attribute.clone();
                let bar = PROGRESS
                    .get_or_init(|| indicatif::ProgressBar::new(0))
                    .clone();
                let options = flagbridge_sync::backfill::BackfillOptions {
                    project,
                    checkpoint,
                    checkpoint_every,
                    bar: Some(bar),
                    interrupt: Some(interrupt),
                    ..Default::default()
                };
                let result = flagbridge_sync::backfill::run(c, &users, options).await;
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
            flagbridge_sync::events::resend_dead_letters(store, ids.as_deref()).map(|moved| {
                println!("{moved} events moved back to the queue; they are sent at the next start");
            })
        }
        None => flagbridge_sync::events::dead_letters(store).map(|letters| {
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

/// `--listen HOST:PORT`: an IP address or a host name (`localhost`), resolved once; IPv4 first.
fn parse_listen(value: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let addrs: Vec<std::net::SocketAddr> = value
        .to_socket_addrs()
        .map_err(|e| format!("`{value}` is not HOST:PORT ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("`{value}` resolves to no address"))
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
        directives.push_str(",flagbridge_sync::serve::bridge=debug");
    }
    if config.logging.log_events {
        directives.push_str(",flagbridge_sync::events=debug");
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
    let result = flagbridge_sync::cli::decide::run(datafile, cases, &mut out);
    decide_exit(result, out)
}

/// The exit code of a `decide` run: 0, 1 when a case failed (said on stderr after the output
/// is flushed), 2 when the run could not be made.
fn decide_exit(
    result: Result<
        flagbridge_sync::cli::decide::DecideSummary,
        flagbridge_sync::cli::decide::DecideError,
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
    settings: &flagbridge_sync::cli::remote::RemoteSettings,
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
    let result = runtime.block_on(flagbridge_sync::cli::remote::run_remote(
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
        None => match flagbridge_sync::serve::embedded_config() {
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
        let handle = match flagbridge_sync::serve::start(config, listener, Default::default()).await
        {
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
