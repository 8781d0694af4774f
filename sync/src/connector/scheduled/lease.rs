//! One instance of the fleet per scheduled run (`store:` configured): a lease per cron slot.

use std::time::Duration;

/// How long the lease of one scheduled run slot lives in the fleet store: longer than any
/// clock skew between instances, so a late instance finds the slot taken.
pub const SCHEDULE_LEASE_TTL: Duration = Duration::from_secs(3600);

/// Whether this instance runs the slot `at` of `projects`: always without a fleet store; with
/// one, only the instance that takes the slot's lease (`SET NX PX`). While Redis is
/// unreachable every instance runs it (list additions are idempotent).
pub async fn claim_run(
    fleet: Option<&crate::fleet::Fleet>,
    at: &chrono::DateTime<chrono::Utc>,
    projects: &[String],
) -> bool {
    let Some(fleet) = fleet else {
        return true;
    };
    let name = format!("sync:{}:{}", projects.join(","), at.timestamp());
    match fleet.try_lease(&name, SCHEDULE_LEASE_TTL).await {
        Ok(Some(_lease)) => true,
        Ok(None) => {
            tracing::info!(slot = %at, projects = ?projects, "REST sync run by another instance of the fleet");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "fleet store unreachable: running the REST sync here");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_instance_of_the_fleet_runs_each_slot() {
        let mut redis = crate::testing::RedisServer::start().unwrap();
        let connect = || crate::fleet::FleetConfig::new(redis.url()).connect();
        let (a, b, c) = (
            connect().await.unwrap(),
            connect().await.unwrap(),
            connect().await.unwrap(),
        );
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let next = chrono::DateTime::from_timestamp(1_800_007_200, 0).unwrap();
        let projects = vec!["default".to_string()];
        let mut ran = 0;
        for fleet in [&a, &b, &c] {
            ran += usize::from(claim_run(Some(fleet), &at, &projects).await);
        }
        assert_eq!(ran, 1);
        // The next slot is free again; no fleet: always run.
        assert!(claim_run(Some(&b), &next, &projects).await);
        assert!(claim_run(None, &at, &projects).await);
        // Redis down: every instance runs (nothing to coordinate with).
        redis.kill();
        assert!(claim_run(Some(&c), &at, &projects).await);
    }
}
