//! The runtime pipelines as the overhead benches run them: an event endpoint that costs
//! nothing, and a Brevo sync in dry-run mode that only flushes when told (and a wait for
//! its worker).

use std::path::Path;
use std::time::Duration;

use flagbridge_sync::brevo::BrevoSync;
use flagbridge_sync::events::{EventTransport, HttpReply};
use flagbridge_sync::BoxFuture;
use flagbridge_sync::TransportError;

/// An event endpoint that accepts everything at once (204), without I/O.
pub struct NullTransport;

impl EventTransport for NullTransport {
    fn post<'a>(
        &'a self,
        _url: &'a str,
        _body: bytes::Bytes,
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(async {
            Ok(HttpReply {
                status: 204,
                body: String::new(),
            })
        })
    }
}

/// An event endpoint that never answers: what is handed over stays stored.
pub struct HangingTransport;

impl EventTransport for HangingTransport {
    fn post<'a>(
        &'a self,
        _url: &'a str,
        _body: bytes::Bytes,
    ) -> BoxFuture<'a, Result<HttpReply, TransportError>> {
        Box::pin(std::future::pending())
    }
}

/// A Brevo sync with no store and no account (its requests go to `dir/dry-run.jsonl`), a
/// flush interval of an hour and `queue_capacity`, started on `runtime`.
pub fn dry_run_brevo_sync(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    queue_capacity: usize,
) -> BrevoSync {
    runtime
        .block_on(
            BrevoSync::builder()
                .store_path(None)
                .dry_run_path(dir.join("dry-run.jsonl"))
                .flush_interval(Duration::from_secs(3600))
                .queue_capacity(queue_capacity)
                .start(),
        )
        .expect("Brevo sync")
}

/// Waits until the Brevo worker processed every decision handed over so far (rings empty).
pub fn wait_processed(sync: &BrevoSync) {
    loop {
        let c = sync.counters();
        if c.decisions_processed >= c.decisions_queued {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}
