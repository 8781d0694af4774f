//! The embedded runtime through `Client`: decisions, datafile refresh, impressions and
//! conversions, delivery across a killed process, `activate`, the OpenFeature provider.

mod client_activate;
mod client_datafile;
mod client_decide;
mod client_events;
mod events_delivery;
mod openfeature;
