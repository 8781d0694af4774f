//! The `flagbridge` command line: [`main`] parses the arguments and runs a subcommand.

mod app;
mod args;
pub mod decide;
pub mod remote;
mod remote_log;

pub use app::main;
/// The JSONL case runner `flagbridge decide --cases` prints with (in the engine, feature `cases`).
pub use flagbridge_engine::cases;
