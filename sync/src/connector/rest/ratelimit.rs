//! Pacing for the Optimizely REST APIs on the crate's one rate limiter (`crate::pace`): "at most
//! N calls per window" for several windows at once (the Flags API's 2/s and 120/min), and even
//! spacing so a budget is never spent in a burst (50 requests per minute per personal access token = one every 1.2 s; results
//! 10 per minute = one every 6 s). [`PacerRegistry`] hands every client of one token the same
//! pacers, so two runs (or two projects) of one token share the token's budget.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::connector::config::Secret;

/// Flags API limit per second (documented).
pub const FLAGS_PER_SECOND: u32 = 2;
/// Flags API limit per minute (documented).
pub const FLAGS_PER_MINUTE: u32 = 120;
/// Results API calls per minute (the connector page: 10 requests/min), spaced evenly.
pub const RESULTS_PER_MINUTE: u32 = 10;
/// REST API calls per minute per personal access token (the connector page: 50 requests/min),
/// spaced evenly; every call of the token counts (v2, Flags API, results).
pub const REST_PER_MINUTE: u32 = 50;

use crate::pace::Pacer;
pub use crate::pace::Window;

impl Window {
    /// `max` calls per minute.
    pub fn per_minute(max: u32) -> Self {
        Window {
            window: Duration::from_secs(60),
            max,
        }
    }

    /// `per_minute` calls per minute, evenly spaced (one every `60 s / per_minute`): never a
    /// burst, and never more than `per_minute` in any minute.
    pub fn spaced_per_minute(per_minute: u32) -> Self {
        Window {
            window: Duration::from_secs(60) / per_minute.max(1),
            max: 1,
        }
    }
}

/// A shared pacer over the crate's one rate limiter: `acquire().await` returns when a call
/// may start.
#[derive(Debug)]
pub struct RateLimiter {
    pacer: Mutex<Pacer>,
}

impl RateLimiter {
    /// A limiter that honours every window.
    pub fn new(windows: Vec<Window>) -> Self {
        RateLimiter {
            pacer: Mutex::new(Pacer::new(windows)),
        }
    }

    /// Waits until a call is allowed and records it.
    pub async fn acquire(&self) {
        acquire_all(&[self]).await;
    }
}

/// Waits until every limiter allows a call, then records the call in all of them at the same
/// instant (so a call paced by two budgets is stamped when it really starts). No lock is held
/// while waiting; callers must pass limiters in one fixed order (the client: the extra
/// limiter, then the token's).
pub async fn acquire_all(limiters: &[&RateLimiter]) {
    loop {
        let mut guards = Vec::with_capacity(limiters.len());
        for l in limiters {
            guards.push(l.pacer.lock().await);
        }
        let now = Instant::now();
        let ready = guards.iter().map(|p| p.ready_at(now)).max().unwrap_or(now);
        if ready <= now {
            for pacer in guards.iter_mut() {
                // Every pacer has room at `now` (checked under the same locks).
                let _ = pacer.try_acquire(now);
            }
            return;
        }
        drop(guards);
        tokio::time::sleep_until(ready).await;
    }
}

/// The pacers one REST client uses: `token` for every call, plus `flags` for Flags API calls
/// and `results` for results calls.
#[derive(Debug, Clone)]
pub struct RestPacers {
    /// Every call of the token.
    pub token: Arc<RateLimiter>,
    /// Flags API calls (in addition to `token`).
    pub flags: Arc<RateLimiter>,
    /// Results calls (in addition to `token`).
    pub results: Arc<RateLimiter>,
}

/// The windows of a [`RestPacers`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacingWindows {
    /// Every call of a token; default [`REST_PER_MINUTE`] per minute, spaced.
    pub token: Vec<Window>,
    /// Flags API calls; default [`FLAGS_PER_SECOND`] per second and [`FLAGS_PER_MINUTE`] per
    /// minute.
    pub flags: Vec<Window>,
    /// Results calls; default [`RESULTS_PER_MINUTE`] per minute, spaced.
    pub results: Vec<Window>,
}

impl Default for PacingWindows {
    fn default() -> Self {
        PacingWindows::per_minute(REST_PER_MINUTE, RESULTS_PER_MINUTE)
    }
}

impl PacingWindows {
    /// `requests` calls per minute per token and `results` results calls per minute, both
    /// spaced evenly, with the Flags API's documented limits.
    pub fn per_minute(requests: u32, results: u32) -> Self {
        PacingWindows {
            token: vec![Window::spaced_per_minute(requests)],
            flags: vec![
                Window::per_second(FLAGS_PER_SECOND),
                Window::per_minute(FLAGS_PER_MINUTE),
            ],
            results: vec![Window::spaced_per_minute(results)],
        }
    }

    /// The same windows for all three (tests against local fakes).
    pub fn uniform(windows: Vec<Window>) -> Self {
        PacingWindows {
            token: windows.clone(),
            flags: windows.clone(),
            results: windows,
        }
    }

    /// Fresh pacers with these windows.
    pub fn pacers(&self) -> RestPacers {
        RestPacers {
            token: Arc::new(RateLimiter::new(self.token.clone())),
            flags: Arc::new(RateLimiter::new(self.flags.clone())),
            results: Arc::new(RateLimiter::new(self.results.clone())),
        }
    }
}

/// Pacers by personal access token (and windows): every client of one token shares them, for
/// the life of the registry (one per `flagbridge sync` process).
#[derive(Debug, Default)]
pub struct PacerRegistry {
    by_token: std::sync::Mutex<HashMap<(u64, PacingWindows), RestPacers>>,
}

impl PacerRegistry {
    /// The pacers of this token with these windows (created on first use).
    pub fn pacers(&self, token: &Secret, windows: &PacingWindows) -> RestPacers {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(token.expose(), &mut h);
        let key = (std::hash::Hasher::finish(&h), windows.clone());
        let mut map = self
            .by_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key).or_insert_with(|| windows.pacers()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_calls() {
        let limiter = RateLimiter::new(vec![Window::per_second(2), Window::per_minute(5)]);
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..7 {
            limiter.acquire().await;
            starts.push(start.elapsed());
        }
        let secs: Vec<u64> = starts.iter().map(|d| d.as_millis() as u64).collect();
        // 2 at 0 s, 2 at 1 s, 1 at 2 s, then the minute window: next ones at 60 s and 60 s.
        assert_eq!(secs, vec![0, 0, 1000, 1000, 2000, 60_000, 60_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn spaced_budget_never_bursts_and_is_shared_per_token() {
        let registry = PacerRegistry::default();
        let windows = PacingWindows::per_minute(50, 10);
        let a = registry.pacers(&Secret::new("pat-1"), &windows);
        let b = registry.pacers(&Secret::new("pat-1"), &windows);
        let other = registry.pacers(&Secret::new("pat-2"), &windows);
        let start = Instant::now();
        let mut starts = Vec::new();
        // Two "runs" of one token, one after the other: one shared spacing.
        for p in [&a, &b, &a] {
            p.results.acquire().await;
            starts.push(start.elapsed().as_millis() as u64);
        }
        assert_eq!(starts, vec![0, 6_000, 12_000], "results: one every 6 s");
        let t = Instant::now();
        for _ in 0..3 {
            a.token.acquire().await;
        }
        assert_eq!(
            t.elapsed(),
            Duration::from_millis(2_400),
            "50/min: one every 1.2 s"
        );
        // Another token has its own budget.
        let t = Instant::now();
        other.results.acquire().await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
