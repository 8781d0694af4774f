//! The one client-side rate limiter: "at most `max` requests in any `window`", for several
//! windows at once, as a sliding log of send times. Pure: the caller passes the time.
//!
//! Used by the Brevo sync (per second, with a margin for network jitter, and per hour) and by
//! the connector's REST clients (the Flags API's 2/s and 120/min, evenly spaced budgets).
//! A sliding log never lets any span of `window` hold more than `max`, whatever the alignment
//! of the server's own windows.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// One limit: at most `max` requests in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Window length.
    pub window: Duration,
    /// Requests allowed in it (0 is taken as 1).
    pub max: u32,
}

impl Window {
    /// `max` requests per second.
    pub fn per_second(max: u32) -> Self {
        Window {
            window: Duration::from_secs(1),
            max,
        }
    }

    /// `max` requests per hour.
    pub fn per_hour(max: u32) -> Self {
        Window {
            window: Duration::from_secs(3600),
            max,
        }
    }

    /// The same limit over a window longer by `margin` (requests delayed in flight still land
    /// in the server's window as counted here).
    pub fn with_margin(self, margin: Duration) -> Self {
        Window {
            window: self.window + margin,
            max: self.max,
        }
    }

    fn max(&self) -> usize {
        self.max.max(1) as usize
    }
}

/// A sliding log of send times checked against every window, plus a block after a 429.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    windows: Vec<Window>,
    /// Send times, oldest first; none older than the longest window.
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(windows: Vec<Window>) -> Self {
        Pacer {
            windows,
            sent: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// When the next request may go out (`now` when every window has room).
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        let mut ready = self.blocked_until.map_or(now, |b| b.max(now));
        for w in &self.windows {
            // Requests still inside the window: those sent after `now - window`.
            let first_inside = self
                .sent
                .partition_point(|t| now.saturating_duration_since(*t) >= w.window);
            let inside = self.sent.len() - first_inside;
            if inside >= w.max() {
                // The request that must leave the window first.
                let leaving = self.sent[self.sent.len() - w.max()];
                ready = ready.max(leaving + w.window);
            }
        }
        ready
    }

    /// Takes one request from the budget at `now`, or tells when to ask again.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        let ready = self.ready_at(now);
        if ready > now {
            return Err(ready);
        }
        self.blocked_until = None;
        let longest = self.windows.iter().map(|w| w.window).max();
        while let (Some(oldest), Some(longest)) = (self.sent.front(), longest) {
            if now.saturating_duration_since(*oldest) < longest {
                break;
            }
            self.sent.pop_front();
        }
        self.sent.push_back(now);
        Ok(())
    }

    /// The request taken last got its answer at `now`: the server counted it at some time in
    /// between, so it counts from `now` here (no span at the server holds more than the limit,
    /// however long a body takes to upload).
    pub(crate) fn finished(&mut self, now: Instant) {
        if let Some(last) = self.sent.back_mut() {
            *last = (*last).max(now);
        }
    }

    /// Blocks the budget until `until` (after a 429); a later block wins.
    pub(crate) fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn minute(max: u32) -> Window {
        Window {
            window: Duration::from_secs(60),
            max,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn wait_table() {
        let t0 = Instant::now();
        let flags = [Window::per_second(2), minute(120)];
        // (offsets of earlier requests in ms, now offset in ms, windows, expected wait ms)
        let cases: &[(&[u64], u64, &[Window], u64)] = &[
            (&[], 0, &flags, 0),
            (&[0], 0, &flags, 0),
            (&[0, 10], 20, &flags, 980),
            (&[0, 10], 999, &flags, 1),
            (&[0, 10], 1000, &flags, 0),
            (&[0, 10], 1010, &flags, 0),
            (&[0, 500, 1000], 1200, &flags, 300),
            (&[0], 30_000, &[minute(1)], 30_000),
            (
                &[0, 0, 900],
                950,
                &[Window::per_second(3).with_margin(ms(50))],
                100,
            ),
        ];
        for (past, now, windows, want) in cases {
            let mut pacer = Pacer::new(windows.to_vec());
            pacer.sent = past.iter().map(|o| t0 + ms(*o)).collect();
            let now = t0 + ms(*now);
            assert_eq!(pacer.ready_at(now) - now, ms(*want), "past {past:?}");
        }
        // 120 requests spread over the first 60 s: the 121st waits for the first to leave.
        let mut pacer = Pacer::new(flags.to_vec());
        pacer.sent = (0..120).map(|i| t0 + ms(i * 500)).collect();
        assert_eq!(pacer.ready_at(t0 + ms(59_999)), t0 + ms(60_000));
    }

    #[tokio::test(start_paused = true)]
    async fn per_second_and_per_hour() {
        let second = Duration::from_secs(1) + ms(50);
        let mut p = Pacer::new(vec![
            Window::per_second(10).with_margin(ms(50)),
            Window::per_hour(25),
        ]);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(p.try_acquire(t0).is_ok());
        }
        assert_eq!(p.try_acquire(t0), Err(t0 + second));
        let t1 = t0 + second;
        for _ in 0..10 {
            assert!(p.try_acquire(t1).is_ok());
        }
        let t2 = t0 + second * 2;
        for _ in 0..5 {
            assert!(p.try_acquire(t2).is_ok());
        }
        // 25 in the last hour: the next when the first leaves it.
        assert_eq!(p.try_acquire(t2), Err(t0 + Duration::from_secs(3600)));
        assert!(p.try_acquire(t0 + Duration::from_secs(3600)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_counts_from_its_answer() {
        let mut p = Pacer::new(vec![Window::per_second(2).with_margin(ms(50))]);
        let t0 = Instant::now();
        assert!(p.try_acquire(t0).is_ok());
        // A slow upload: answered at 400 ms.
        p.finished(t0 + ms(400));
        assert!(p.try_acquire(t0 + ms(400)).is_ok());
        p.finished(t0 + ms(410));
        // The third waits a second (+margin) after the first's answer, not its start.
        assert_eq!(p.try_acquire(t0 + ms(1000)), Err(t0 + ms(1450)));
    }

    #[tokio::test(start_paused = true)]
    async fn blocked_after_429() {
        let mut p = Pacer::new(vec![Window::per_second(10)]);
        let t0 = Instant::now();
        p.block_until(t0 + Duration::from_secs(3));
        p.block_until(t0 + Duration::from_secs(2));
        assert_eq!(p.try_acquire(t0), Err(t0 + Duration::from_secs(3)));
        assert!(p.try_acquire(t0 + Duration::from_secs(3)).is_ok());
    }

    proptest::proptest! {
        /// Whatever the arrivals, the start times the pacer hands out never put more than
        /// `max` requests in any window, and no request starts before it arrives.
        #[test]
        fn no_window_is_ever_overfull(
            mut arrivals in proptest::collection::vec(0u64..5_000, 1..60),
            per_second in 1u32..4,
            per_minute in 1u32..30,
        ) {
            arrivals.sort_unstable();
            let windows = [Window::per_second(per_second), minute(per_minute)];
            let t0 = Instant::now();
            let mut pacer = Pacer::new(windows.to_vec());
            let mut starts = Vec::new();
            let mut clock = t0;
            for a in arrivals {
                let arrive = t0 + ms(a);
                clock = clock.max(arrive);
                if let Err(ready) = pacer.try_acquire(clock) {
                    clock = ready;
                    proptest::prop_assert!(pacer.try_acquire(clock).is_ok());
                }
                proptest::prop_assert!(clock >= arrive);
                starts.push(clock);
            }
            for w in windows {
                for (i, s) in starts.iter().enumerate() {
                    let inside = starts[i..].iter().filter(|t| t.duration_since(*s) < w.window).count();
                    proptest::prop_assert!(inside <= w.max as usize, "{} in {:?}", inside, w.window);
                }
            }
        }
    }
}
