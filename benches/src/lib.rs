//! Shared helpers for the flagbridge benchmarks: the benchmark plan (fixtures, flags, users),
//! the `optimizely` crate peer, a counting global allocator and percentile summaries.

pub mod alloc;
pub mod allocations;
pub mod args;
pub mod fixtures;
pub mod peer;
pub mod stats;
pub mod users;
