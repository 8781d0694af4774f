//! The `flagbridge` command line's arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Optimizely Feature Experimentation decisions, carried into Brevo.
#[derive(Parser)]
#[command(name = "flagbridge", version, about)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum Command {
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
        #[arg(long, default_value_t = crate::remote::DEFAULT_CMAB_CACHE_SIZE)]
        cmab_cache_size: usize,
        /// CMAB cache TTL in milliseconds with --remote (0 = the default, 30 minutes).
        #[arg(long, default_value_t = 1_800_000)]
        cmab_cache_ttl: u64,
        /// ODP segment cache entries with --remote.
        #[arg(long, default_value_t = crate::remote::DEFAULT_SEGMENTS_CACHE_SIZE)]
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
        #[arg(long, default_value_t = crate::connector::backfill::DEFAULT_CHECKPOINT_EVERY)]
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
