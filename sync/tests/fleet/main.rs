//! Fleets: several processes sharing one Brevo budget and contact set through Redis.

#[path = "../common/mod.rs"]
mod common;

mod fleet_budget;
mod fleet_contacts;
mod fleet_events;
mod fleet_serve;
mod fleet_tls;
