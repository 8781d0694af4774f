//! A coarse wall clock for the decide path.
//!
//! Reading the system clock costs about as much as a small decide (~30 ns here), so impression
//! timestamps come from a millisecond counter that one background thread (`flagbridge-clock`,
//! started with the first `Client` that sends events, living as long as the process) refreshes
//! every [`TICK`], read with a relaxed load. Resolution: the tick, plus however late the thread
//! is scheduled on a busy machine (a few ms at worst); logx timestamps are milliseconds anyway.
//! Before the thread runs (or if it could not start) the system clock is read instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the coarse clock is refreshed.
pub(crate) const TICK: Duration = Duration::from_millis(1);

static NOW_MS: AtomicU64 = AtomicU64::new(0);
static START: Once = Once::new();

/// Milliseconds since the Unix epoch, read from the system clock.
pub(crate) fn precise_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts the refreshing thread once per process.
pub(crate) fn start() {
    START.call_once(|| {
        NOW_MS.store(precise_ms(), Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("flagbridge-clock".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                NOW_MS.store(precise_ms(), Ordering::Relaxed);
            });
        if let Err(error) = spawned {
            NOW_MS.store(0, Ordering::Relaxed);
            tracing::warn!(%error, "cannot start the coarse clock thread; reading the system clock");
        }
    });
}

/// Milliseconds since the Unix epoch, at most about one [`TICK`] old once [`start`]ed.
#[inline]
pub(crate) fn coarse_ms() -> u64 {
    match NOW_MS.load(Ordering::Relaxed) {
        0 => precise_ms(),
        ms => ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_is_close_to_the_system_clock() {
        start();
        let before = precise_ms();
        let coarse = coarse_ms();
        let after = precise_ms();
        // Never ahead of the system clock; behind by the refresh lag only (generous bound:
        // this is not a timing test, it catches a clock that is not refreshed at all or is
        // in the wrong unit).
        assert!(coarse <= after, "{coarse} > {after}");
        assert!(
            before.saturating_sub(coarse) < 60_000,
            "{before} vs {coarse}"
        );
    }
}
