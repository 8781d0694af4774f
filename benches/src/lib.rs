//! Shared helpers for the flagbridge benchmarks: the benchmark plan (fixtures, flags, users),
//! the `optimizely` crate peer, a counting global allocator, percentile summaries and the
//! runtime pipelines of the overhead benches.

pub mod alloc;
pub mod allocations;
pub mod args;
pub mod fixtures;
pub mod generate;
pub mod peer;
pub mod pipelines;
pub mod scale;
pub mod stats;
pub mod users;
