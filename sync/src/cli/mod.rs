//! Library side of the `flagbridge` command line (the binary only parses arguments).

pub mod cases;
pub mod decide;
pub mod remote;
mod remote_log;
