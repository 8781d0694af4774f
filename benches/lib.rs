//! Shared helpers for the flagbridge benchmarks.
