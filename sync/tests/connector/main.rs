//! The `flagbridge` application: the command line (`check-config`, `decide`, `serve`),
//! `serve` end to end (Agent API, remote decisions, SIGTERM, the status page), the Optimizely
//! REST client, exact numbers through a cases file and an HTTP body.

mod cli_check_config;
mod cli_decide;
mod cli_decide_cases;
mod cli_serve;
mod exact_numbers;
mod rest_client;
mod serve_agent_more;
mod serve_e2e;
mod serve_remote;
mod serve_sigterm;
mod status_page;
