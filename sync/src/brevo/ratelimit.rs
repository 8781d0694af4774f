//! Client-side request budget of one Brevo endpoint family (per second and per hour).
//!
//! Pure: the caller passes the time. The per-second budget is a sliding log (no 1 s span
//! ever holds more than the limit, whatever the alignment of Brevo's own windows, plus a
//! small margin for network jitter); the per-hour budget is a fixed window starting at the
//! first request of each hour. A 429 blocks the budget until Brevo's reset.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::config::RateBudget;

#[derive(Debug, Clone, Copy)]
struct Window {
    limit: u32,
    length: Duration,
    start: Option<Instant>,
    used: u32,
}

impl Window {
    fn new(limit: u32, length: Duration) -> Self {
        Window {
            limit: limit.max(1),
            length,
            start: None,
            used: 0,
        }
    }

    /// When a request may go out in this window (`now` when it has room).
    fn ready_at(&mut self, now: Instant) -> Instant {
        match self.start {
            Some(start) if now < start + self.length => {
                if self.used < self.limit {
                    now
                } else {
                    start + self.length
                }
            }
            _ => {
                self.start = None;
                self.used = 0;
                now
            }
        }
    }

    fn take(&mut self, now: Instant) {
        if self.start.is_none() {
            self.start = Some(now);
        }
        self.used += 1;
    }
}

/// Margin added to the sliding second so requests delayed in flight still land in Brevo's
/// window as counted here.
pub(crate) const JITTER_MARGIN: Duration = Duration::from_millis(50);

/// Send times of the last `limit` requests.
#[derive(Debug, Clone)]
struct SlidingLog {
    limit: usize,
    length: Duration,
    sent: VecDeque<Instant>,
}

impl SlidingLog {
    fn ready_at(&self, now: Instant) -> Instant {
        match self.sent.front() {
            Some(&oldest) if self.sent.len() >= self.limit => (oldest + self.length).max(now),
            _ => now,
        }
    }

    fn take(&mut self, now: Instant) {
        if self.sent.len() >= self.limit {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
    }

    /// The newest request got its answer at `now`: Brevo counted it at some point before
    /// that, so it counts from `now` here.
    fn finished(&mut self, now: Instant) {
        if let Some(last) = self.sent.back_mut() {
            *last = (*last).max(now);
        }
    }
}

/// Request budget shared by every call of one endpoint family.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    second: SlidingLog,
    hour: Window,
    blocked_until: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(budget: RateBudget) -> Self {
        let limit = budget.per_second.max(1) as usize;
        RateLimiter {
            second: SlidingLog {
                limit,
                length: Duration::from_secs(1) + JITTER_MARGIN,
                sent: VecDeque::with_capacity(limit),
            },
            hour: Window::new(budget.per_hour, Duration::from_secs(3600)),
            blocked_until: None,
        }
    }

    /// Takes one request from the budget, or tells when to ask again.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(until);
            }
            self.blocked_until = None;
        }
        let ready = self.second.ready_at(now).max(self.hour.ready_at(now));
        if ready > now {
            return Err(ready);
        }
        self.second.take(now);
        self.hour.take(now);
        Ok(())
    }

    /// The request taken last got its answer at `now` (the worker sends one request at a
    /// time per family). A request counts in the sliding second from its answer, not from its
    /// start: Brevo saw it at some time in between, and the next one arrives after it starts,
    /// so no second at Brevo holds more than the limit, however long a body takes to upload
    /// or a commit delays a send.
    pub(crate) fn finished(&mut self, now: Instant) {
        self.second.finished(now);
    }

    /// Blocks the budget until `until` (after a 429).
    pub(crate) fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn per_second_and_per_hour() {
        let mut r = RateLimiter::new(RateBudget {
            per_second: 10,
            per_hour: 25,
        });
        let t0 = Instant::now();
        let second = Duration::from_secs(1) + JITTER_MARGIN;
        for _ in 0..10 {
            assert!(r.try_acquire(t0).is_ok());
        }
        assert_eq!(r.try_acquire(t0), Err(t0 + second));
        let t1 = t0 + second;
        for _ in 0..10 {
            assert!(r.try_acquire(t1).is_ok());
        }
        let t2 = t0 + second * 2;
        for _ in 0..5 {
            assert!(r.try_acquire(t2).is_ok());
        }
        // 25 used this hour: next at the hour's end.
        assert_eq!(r.try_acquire(t2), Err(t0 + Duration::from_secs(3600)));
        assert!(r.try_acquire(t0 + Duration::from_secs(3600)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn no_second_ever_holds_more_than_the_limit() {
        let mut r = RateLimiter::new(RateBudget {
            per_second: 3,
            per_hour: 36_000,
        });
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 2 requests at 0 ms, 1 at 900 ms: the 4th may go only 1 s (+margin) after the 1st.
        assert!(r.try_acquire(t0).is_ok());
        assert!(r.try_acquire(t0).is_ok());
        assert!(r.try_acquire(t0 + ms(900)).is_ok());
        assert_eq!(r.try_acquire(t0 + ms(950)), Err(t0 + ms(1050)));
        assert!(r.try_acquire(t0 + ms(1050)).is_ok());
        assert!(r.try_acquire(t0 + ms(1050)).is_ok());
        assert_eq!(r.try_acquire(t0 + ms(1050)), Err(t0 + ms(1950)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_counts_from_its_answer() {
        let mut r = RateLimiter::new(RateBudget {
            per_second: 2,
            per_hour: 36_000,
        });
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert!(r.try_acquire(t0).is_ok());
        // A slow upload: answered at 400 ms.
        r.finished(t0 + ms(400));
        assert!(r.try_acquire(t0 + ms(400)).is_ok());
        r.finished(t0 + ms(410));
        // The third waits a second (+margin) after the first's answer, not its start.
        assert_eq!(r.try_acquire(t0 + ms(1000)), Err(t0 + ms(1450)));
    }

    #[tokio::test(start_paused = true)]
    async fn blocked_after_429() {
        let mut r = RateLimiter::new(RateBudget {
            per_second: 10,
            per_hour: 36_000,
        });
        let t0 = Instant::now();
        r.block_until(t0 + Duration::from_secs(3));
        r.block_until(t0 + Duration::from_secs(2));
        assert_eq!(r.try_acquire(t0), Err(t0 + Duration::from_secs(3)));
        assert!(r.try_acquire(t0 + Duration::from_secs(3)).is_ok());
    }
}
