//! In-process fakes of the remote services, for integration tests.
pub mod brevo_lists;
pub mod optimizely_rest;
