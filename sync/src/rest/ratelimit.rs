//! Client-side pacing for the Optimizely REST APIs: "at most N calls per window" for several
//! windows at once (the Flags API's 2/s and 120/min, the results API's 10/min).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Flags API limit per second (documented).
pub const FLAGS_PER_SECOND: u32 = 2;
/// Flags API limit per minute (documented).
pub const FLAGS_PER_MINUTE: u32 = 120;
/// Results calls per minute (the connector's own budget; results change slowly).
pub const RESULTS_PER_MINUTE: u32 = 10;
/// REST v2 calls per second (v2 publishes no limit; 2/s is the safe default).
pub const V2_PER_SECOND: u32 = 2;

/// One limit: at most `max` calls in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Window length.
    pub window: Duration,
    /// Calls allowed in it.
    pub max: u32,
}

impl Window {
    /// `max` calls per second.
    pub fn per_second(max: u32) -> Self {
        Window {
            window: Duration::from_secs(1),
            max,
        }
    }
    /// `max` calls per minute.
    pub fn per_minute(max: u32) -> Self {
        Window {
            window: Duration::from_secs(60),
            max,
        }
    }
}

/// How long to wait before the next call may start, given the start times of earlier calls
/// (oldest first). Pure; the heart of [`RateLimiter`].
pub fn wait_before_next(history: &VecDeque<Instant>, now: Instant, windows: &[Window]) -> Duration {
    let mut wait = Duration::ZERO;
    for w in windows {
        let max = w.max.max(1) as usize;
        // Calls still inside the window.
        let inside: Vec<&Instant> = history
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < w.window)
            .collect();
        if inside.len() >= max {
            // The call that must leave the window first: the (len - max + 1)-th oldest.
            let leaving = inside[inside.len() - max];
            let free_at = *leaving + w.window;
            wait = wait.max(free_at.saturating_duration_since(now));
        }
    }
    wait
}

/// A shared pacer: `acquire().await` returns when a call may start.
#[derive(Debug)]
pub struct RateLimiter {
    windows: Vec<Window>,
    history: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter that honours every window.
    pub fn new(windows: Vec<Window>) -> Self {
        RateLimiter {
            windows,
            history: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a call is allowed and records it.
    pub async fn acquire(&self) {
        let longest = self
            .windows
            .iter()
            .map(|w| w.window)
            .max()
            .unwrap_or(Duration::ZERO);
        let mut history = self.history.lock().await;
        loop {
            let now = Instant::now();
            while history
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= longest)
            {
                history.pop_front();
            }
            let wait = wait_before_next(&history, now, &self.windows);
            if wait.is_zero() {
                history.push_back(now);
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_table() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let flags = [Window::per_second(2), Window::per_minute(120)];
        // (offsets of earlier calls in ms, now offset in ms, windows, expected wait ms)
        let cases: &[(&[u64], u64, &[Window], u64)] = &[
            (&[], 0, &flags, 0),
            (&[0], 0, &flags, 0),
            (&[0, 10], 20, &flags, 980),
            (&[0, 10], 999, &flags, 1),
            (&[0, 10], 1000, &flags, 0),
            (&[0, 10], 1010, &flags, 0),
            (&[0, 500, 1000], 1200, &flags, 300),
            (&[0], 30_000, &[Window::per_minute(1)], 30_000),
        ];
        for (past, now, windows, want) in cases {
            let history: VecDeque<Instant> = past.iter().map(|o| t0 + ms(*o)).collect();
            let got = wait_before_next(&history, t0 + ms(*now), windows);
            assert_eq!(got, ms(*want), "past {past:?} now {now}");
        }
        // 120 calls spread over the first 60 s: the 121st waits for the first to leave.
        let history: VecDeque<Instant> = (0..120).map(|i| t0 + ms(i * 500)).collect();
        assert_eq!(wait_before_next(&history, t0 + ms(59_999), &flags), ms(1));
    }

    proptest::proptest! {
        /// Whatever the arrivals, the start times the limiter hands out never put more than
        /// `max` calls in any window, and no call starts before it arrives.
        #[test]
        fn no_window_is_ever_overfull(
            mut arrivals in proptest::collection::vec(0u64..5_000, 1..60),
            per_second in 1u32..4,
            per_minute in 1u32..30,
        ) {
            arrivals.sort_unstable();
            let windows = [Window::per_second(per_second), Window::per_minute(per_minute)];
            let t0 = Instant::now();
            let mut history = VecDeque::new();
            let mut starts = Vec::new();
            let mut clock = t0;
            for a in arrivals {
                let arrive = t0 + Duration::from_millis(a);
                clock = clock.max(arrive);
                let wait = wait_before_next(&history, clock, &windows);
                clock += wait;
                proptest::prop_assert!(clock >= arrive);
                history.push_back(clock);
                starts.push(clock);
            }
            for w in windows {
                for (i, s) in starts.iter().enumerate() {
                    let inside = starts[i..].iter().filter(|t| t.duration_since(*s) < w.window).count();
                    proptest::prop_assert!(inside <= w.max as usize, "{} calls in {:?}", inside, w.window);
                }
            }
        }
    }

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
}
