//! In-process fake servers on 127.0.0.1 for tests (feature `testing`): a datafile CDN, an
//! event endpoint, a CMAB + ODP service, a Redis server, Brevo ([`fake_brevo`]) and the
//! Optimizely REST API ([`optimizely_rest`]) that behave like the real ones, with switchable
//! faults. The one home of the test doubles: the integration tests, the connector's end-to-end
//! tests and the benchmarks use them from here.
//!
//! Every response carries `Connection: close`, so a test with a paused clock never reuses a
//! connection the server has timed out.

mod cdn;
mod datafile;
mod event_endpoint;
pub mod fake_brevo;
pub mod optimizely_rest;
mod redis_server;
mod remote;

pub use crate::brevo::bench_support::CoalescerBench;
pub use cdn::{CdnFault, FakeCdn};
pub use datafile::{datafile, datafile_json, SDK_KEY};
pub use event_endpoint::{EventFault, FakeEventEndpoint};
pub use redis_server::RedisServer;
pub use remote::{fnv1a32, parse_segments_query, FakeRemote};

use std::net::SocketAddr;

/// Binds 127.0.0.1 on a free port and serves `app` in the background.
async fn serve(app: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
