//! The datafiles and users of the scale benches (issue 21): `benches/scale.rs` (criterion) and
//! `benches/scale_paired.rs` (interleaved) measure the same things.

use serde_json::Value;

use crate::fixtures::{repo_root, Plan, User};
use crate::generate::{datafile, DEFAULT_SEED};

/// Generated datafile sizes (flags).
pub const GENERATED: [usize; 3] = [100, 1_000, 5_000];

/// `(name, text)` of every datafile of the scale benches, smallest first.
pub fn datafiles(plan: &Plan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let shared = ["../shared/datafiles", "../../shared/datafiles"]
        .map(|dir| repo_root().join(dir).join("go_100_entities.json"));
    match shared.iter().find_map(|p| std::fs::read_to_string(p).ok()) {
        Some(text) => out.push(("go_100_entities".to_string(), text)),
        None => eprintln!("../shared/datafiles/go_100_entities.json absent: skipped"),
    }
    out.push(("large_700".to_string(), plan.large.text.clone()));
    for n in GENERATED {
        out.push((format!("gen_{n}"), datafile(n, DEFAULT_SEED)));
    }
    out.sort_by_key(|(_, text)| text.len());
    out
}

/// The plan's users with 60 more attributes (`attr_1`..`attr_60`, the names `go_100_entities`
/// conditions read; every third one has the value its audiences look for).
pub fn wide_users(plan: &Plan) -> Vec<User> {
    plan.users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut u = u.clone();
            for k in 1..=60 {
                let value = if (i + k) % 3 == 0 {
                    "testvalue"
                } else {
                    "other"
                };
                u.attributes.push((format!("attr_{k}"), Value::from(value)));
            }
            u
        })
        .collect()
}
