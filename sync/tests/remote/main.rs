//! Remote decisions (CMAB, ODP segments) against the fake service, and their goldens.

mod remote_conformance;
mod remote_service;
