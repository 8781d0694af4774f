//! The budget of one endpoint family: the local limiter, or the fleet's shared one in Redis
//! when a `store:` is configured (falling back to the local one while Redis is unreachable).

use std::time::Duration;

use tokio::time::Instant;

use super::super::config::{RateBudget, JITTER_MARGIN};
use crate::fleet::ratelimit::{Acquire, FleetLimiter};
use crate::fleet::Fleet;
use crate::pace::{Pacer, Window};

/// How long the shared budget is not asked again after Redis failed (the local one is used).
const FLEET_RETRY_AFTER: Duration = Duration::from_secs(1);

pub(super) struct Budget {
    local: Pacer,
    fleet: Option<FleetLimiter>,
    /// Redis failed: the local budget is used until then.
    local_until: Option<Instant>,
    /// The last slot came from the shared budget.
    granted_by_fleet: bool,
}

impl Budget {
    pub(super) fn new(
        budget: RateBudget,
        fleet: Option<&Fleet>,
        family: &str,
        request_timeout: Duration,
    ) -> Self {
        Budget {
            local: Pacer::new(vec![
                Window::per_second(budget.per_second).with_margin(JITTER_MARGIN),
                Window::per_hour(budget.per_hour),
            ]),
            fleet: fleet.map(|f| FleetLimiter::new(f.clone(), family, budget, request_timeout)),
            local_until: None,
            granted_by_fleet: false,
        }
    }

    /// Takes one request from the budget, or tells when to ask again.
    pub(super) async fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        let use_fleet = self.local_until.is_none_or(|until| now >= until);
        if let (Some(fleet), true) = (self.fleet.as_mut(), use_fleet) {
            match fleet.try_acquire().await {
                Ok(Acquire::Granted) => {
                    self.local_until = None;
                    self.granted_by_fleet = true;
                    return Ok(());
                }
                Ok(Acquire::Wait(wait)) => {
                    self.local_until = None;
                    return Err(Instant::now() + wait);
                }
                Err(_) => {
                    // Logged once per outage by the fleet handle.
                    self.local_until = Some(Instant::now() + FLEET_RETRY_AFTER);
                }
            }
        }
        self.granted_by_fleet = false;
        self.local.try_acquire(Instant::now())
    }

    /// The request taken last got its answer.
    pub(super) async fn finished(&mut self, now: Instant) {
        if self.granted_by_fleet {
            if let Some(fleet) = self.fleet.as_mut() {
                fleet.finished().await;
            }
        } else {
            self.local.finished(now);
        }
    }

    /// Blocks the budget until `until` (after a 429): the whole fleet's when shared.
    pub(super) async fn block_until(&mut self, until: Instant) {
        self.local.block_until(until);
        if let Some(fleet) = self.fleet.as_mut() {
            let wait = until.saturating_duration_since(Instant::now());
            let _ = fleet.block_for(wait).await;
        }
    }
}
