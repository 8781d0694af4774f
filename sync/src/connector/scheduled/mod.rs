//! `flagbridge sync`: the scheduled REST side. Lists experiments, flags, audiences and events,
//! reads results, picks winners and fills one Brevo list per winning variation with the contacts
//! known to have been in it.

pub mod job;
pub mod lease;
pub mod lists;
pub mod membership;
pub mod report;

pub use job::{run_once, run_scheduled, ProjectReport, RunOptions, SyncJobError};
pub use lists::{BrevoLists, DryRunLists, ListWriter};
pub use membership::{Assignment, MembershipStore, MembershipWriter};
