//! Winner picking from experiment results: pure, table-tested.

use super::types::{Experiment, ExperimentResults, VariationResult};

/// Significance a legacy `is_improvement` needs to count as a win.
pub const LEGACY_SIGNIFICANCE: f64 = 0.95;

/// A variation that beat the baseline on the primary metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Winner {
    /// Experiment id.
    pub experiment_id: String,
    /// Experiment key (or name, or id).
    pub experiment_key: String,
    /// Variation id.
    pub variation_id: String,
    /// Variation key (or name, or id).
    pub variation_key: String,
    /// Lift on the primary metric, when given.
    pub lift: Option<f64>,
}

/// Whether one variation's primary-metric result is a significant improvement:
/// `lift.lift_status == "better"` and `lift.is_significant`, or (legacy payloads)
/// `is_improvement` with significance at least [`LEGACY_SIGNIFICANCE`].
pub fn is_win(result: &VariationResult) -> bool {
    if result.is_baseline {
        return false;
    }
    if let Some(lift) = &result.lift {
        if lift.lift_status.as_deref() == Some("better") && lift.is_significant == Some(true) {
            return true;
        }
    }
    let legacy_improvement = result
        .is_improvement
        .or_else(|| result.lift.as_ref().and_then(|l| l.is_improvement));
    let significance = result
        .significance
        .or_else(|| result.lift.as_ref().and_then(|l| l.significance));
    matches!(
        (legacy_improvement, significance),
        (Some(true), Some(s)) if s >= LEGACY_SIGNIFICANCE
    )
}

/// The winners of one experiment on its primary (first) metric, best lift first.
pub fn pick_winners(experiment: &Experiment, results: &ExperimentResults) -> Vec<Winner> {
    let Some(primary) = results.metrics.first() else {
        return Vec::new();
    };
    let experiment_key = experiment
        .key
        .clone()
        .or_else(|| experiment.name.clone())
        .unwrap_or_else(|| experiment.id.clone());
    let mut winners: Vec<Winner> = primary
        .results
        .iter()
        .filter(|(_, r)| is_win(r))
        .map(|(map_key, r)| {
            let variation_id = r.variation_id.clone().unwrap_or_else(|| map_key.clone());
            let variation_key = experiment
                .variation_key(&variation_id)
                .map(str::to_string)
                .or_else(|| r.name.clone())
                .unwrap_or_else(|| variation_id.clone());
            Winner {
                experiment_id: experiment.id.clone(),
                experiment_key: experiment_key.clone(),
                variation_id,
                variation_key,
                lift: r.lift.as_ref().and_then(|l| l.value),
            }
        })
        .collect();
    winners.sort_by(|a, b| {
        b.lift
            .unwrap_or(f64::MIN)
            .total_cmp(&a.lift.unwrap_or(f64::MIN))
            .then_with(|| a.variation_id.cmp(&b.variation_id))
    });
    winners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::rest::types::Datapoint;

    fn vr(
        baseline: bool,
        status: Option<&str>,
        significant: Option<bool>,
        improvement: Option<bool>,
        significance: Option<f64>,
    ) -> VariationResult {
        VariationResult {
            variation_id: None,
            name: None,
            is_baseline: baseline,
            lift: Some(Datapoint {
                value: Some(0.1),
                significance,
                is_significant: significant,
                lift_status: status.map(str::to_string),
                is_improvement: None,
            }),
            is_improvement: improvement,
            significance: None,
        }
    }

    #[test]
    fn is_win_table() {
        let cases = [
            (vr(false, Some("better"), Some(true), None, None), true),
            (vr(false, Some("better"), Some(false), None, None), false),
            (vr(false, Some("worse"), Some(true), None, None), false),
            (vr(false, Some("equal"), Some(true), None, None), false),
            (vr(true, Some("better"), Some(true), None, None), false),
            (vr(false, None, None, Some(true), Some(0.95)), true),
            (vr(false, None, None, Some(true), Some(0.949)), false),
            (vr(false, None, None, Some(false), Some(0.99)), false),
            (vr(false, None, None, Some(true), None), false),
        ];
        for (i, (r, want)) in cases.iter().enumerate() {
            assert_eq!(is_win(r), *want, "case {i}: {r:?}");
        }
    }

    #[test]
    fn picks_from_primary_metric_only_best_first() {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "id": 11, "key": "checkout_test", "status": "running",
            "variations": [
                {"variation_id": 1, "key": "control"},
                {"variation_id": 2, "key": "blue"},
                {"variation_id": 3, "key": "green"}
            ]
        }))
        .unwrap();
        let better = |v: f64| serde_json::json!({"value": v, "is_significant": true, "lift_status": "better"});
        let results: ExperimentResults = serde_json::from_value(serde_json::json!({
            "experiment_id": 11,
            "metrics": [
                {"name": "primary", "results": {
                    "1": {"variation_id": "1", "is_baseline": true},
                    "2": {"variation_id": "2", "lift": better(0.05)},
                    "3": {"variation_id": "3", "lift": better(0.20)}
                }},
                {"name": "secondary", "results": {
                    "1": {"variation_id": "1", "is_baseline": true, "lift": better(0.9)}
                }}
            ]
        }))
        .unwrap();
        let w = pick_winners(&experiment, &results);
        let keys: Vec<&str> = w.iter().map(|w| w.variation_key.as_str()).collect();
        assert_eq!(keys, ["green", "blue"]);
        assert_eq!(w[0].experiment_key, "checkout_test");
        assert_eq!(w[0].variation_id, "3");
        let empty: ExperimentResults =
            serde_json::from_value(serde_json::json!({"experiment_id": "11"})).unwrap();
        assert!(pick_winners(&experiment, &empty).is_empty());
    }
}
