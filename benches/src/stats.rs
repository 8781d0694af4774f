//! Percentiles and the small JSON result files the custom (non-criterion) measurements write.

use std::path::PathBuf;

/// Nearest-rank percentile (`p` in 0..=100) of already sorted samples; 0 for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median, p99, p99.9 and max of unsorted samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub samples: usize,
    pub median: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    /// Sorts `samples` and summarises them.
    pub fn of(samples: &mut [f64]) -> Summary {
        samples.sort_by(f64::total_cmp);
        Summary {
            samples: samples.len(),
            median: percentile(samples, 50.0),
            p99: percentile(samples, 99.0),
            p999: percentile(samples, 99.9),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }

    /// As a JSON object (values in the unit of the samples).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "samples": self.samples,
            "median": self.median,
            "p99": self.p99,
            "p99_9": self.p999,
            "max": self.max,
        })
    }
}

/// Latencies in whole nanoseconds, 1 ns resolution up to [`Histogram::RANGE_NS`], exact above;
/// recording never allocates below the range, so it does not disturb what it measures.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    overflow: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; Self::RANGE_NS as usize],
            overflow: Vec::new(),
            total: 0,
        }
    }
}

impl Histogram {
    /// Values below this many ns are counted in buckets; above, kept one by one.
    pub const RANGE_NS: u64 = 100_000;

    /// Adds one latency.
    pub fn record(&mut self, ns: u64) {
        match self.counts.get_mut(ns as usize) {
            Some(count) => *count += 1,
            None => self.overflow.push(ns),
        }
        self.total += 1;
    }

    /// Nearest-rank percentile (`p` in 0..=100); 0 when empty.
    pub fn percentile(&mut self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = (((p / 100.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (ns, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return ns as f64;
            }
        }
        self.overflow.sort_unstable();
        let at = (rank - seen - 1) as usize;
        self.overflow.get(at).copied().unwrap_or(0) as f64
    }

    /// Median, p99, p99.9 and max.
    pub fn summary(&mut self) -> Summary {
        Summary {
            samples: self.total as usize,
            median: self.percentile(50.0),
            p99: self.percentile(99.0),
            p999: self.percentile(99.9),
            max: self.percentile(100.0),
        }
    }
}

/// `target/flagbridge-bench/`, where the custom measurements leave their JSON results for
/// the `report` binary (`CARGO_TARGET_DIR` respected).
pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::fixtures::repo_root().join("target"));
    target.join("flagbridge-bench")
}

/// Writes `value` as pretty JSON to `results_dir()/name`, creating the directory.
pub fn write_result(name: &str, value: &serde_json::Value) -> std::io::Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let mut unsorted = vec![3.0, 1.0, 2.0];
        let s = Summary::of(&mut unsorted);
        assert_eq!((s.median, s.max, s.samples), (2.0, 3.0, 3));
    }

    #[test]
    fn histogram_matches_sorted_percentiles() {
        let mut h = Histogram::default();
        let mut raw = Vec::new();
        for i in 0..1000u64 {
            let ns = (i * 7919) % 997 + if i % 100 == 0 { 250_000 } else { 0 };
            h.record(ns);
            raw.push(ns as f64);
        }
        let exact = Summary::of(&mut raw);
        assert_eq!(h.summary(), exact);
        assert_eq!(Histogram::default().percentile(50.0), 0.0);
    }
}
