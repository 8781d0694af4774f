//! In-process fakes of the remote services, for integration tests.
pub mod optimizely_rest;
