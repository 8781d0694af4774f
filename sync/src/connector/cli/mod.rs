//! The `flagbridge` command line: [`main`] parses the arguments and runs a subcommand.

mod app;
mod args;
pub mod cases;
pub mod decide;
pub mod remote;
mod remote_log;

pub use app::main;
