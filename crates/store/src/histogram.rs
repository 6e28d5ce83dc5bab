//! Speeds kept as a sparse histogram of 1 km/h buckets (bucket `k` holds speeds in `[k, k+1)`),
//! with their exact count, sum and number over the limit: small to store, and histograms of
//! several bins or runs merge by adding, which percentiles of raw samples would not allow.
//! Percentiles are read linearly inside a bucket, so they are exact to within 1 km/h.

use std::collections::BTreeMap;

/// Speeds above this are kept in its bucket (a tracking glitch must not make huge buckets).
const MAX_KMH: f64 = 1000.0;

/// A histogram of speeds in 1 km/h buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpeedHistogram {
    count: u64,
    sum_kmh: f64,
    over_limit: u64,
    buckets: BTreeMap<u32, u64>,
}

/// Text that is not a histogram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad speed histogram {text:?}: {reason} (expected buckets like \"42:3,43:1\")")]
pub struct HistogramError {
    /// The text (at most its first 80 characters).
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

impl SpeedHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one speed (negative ones count as 0; not-a-number is ignored), and whether it was over
    /// the lane's limit.
    pub fn add(&mut self, kmh: f64, over_limit: bool) {
        if kmh.is_nan() {
            return;
        }
        let kmh = kmh.clamp(0.0, MAX_KMH);
        // In [0, 1000]: the cast cannot truncate.
        *self.buckets.entry(kmh.floor() as u32).or_default() += 1;
        self.count += 1;
        self.sum_kmh += kmh;
        self.over_limit += u64::from(over_limit);
    }

    /// Adds all of `other`'s speeds.
    pub fn merge(&mut self, other: &Self) {
        for (&bucket, &n) in &other.buckets {
            *self.buckets.entry(bucket).or_default() += n;
        }
        self.count += other.count;
        self.sum_kmh += other.sum_kmh;
        self.over_limit += other.over_limit;
    }

    /// How many speeds.
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// Their sum, km/h.
    pub const fn sum_kmh(&self) -> f64 {
        self.sum_kmh
    }

    /// How many were over the limit.
    pub const fn over_limit(&self) -> u64 {
        self.over_limit
    }

    /// The mean speed, km/h; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_kmh / self.count as f64)
    }

    /// The `p`th percentile (`p` in 0..=100, e.g. 85), km/h, read linearly inside its bucket;
    /// `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = p.clamp(0.0, 100.0) / 100.0 * self.count as f64;
        let mut below = 0.0;
        let mut last = 0;
        for (&bucket, &n) in &self.buckets {
            let n = n as f64;
            if below + n >= rank {
                return Some(f64::from(bucket) + (rank - below) / n);
            }
            below += n;
            last = bucket;
        }
        Some(f64::from(last) + 1.0)
    }

    /// The share (0 to 1) of speeds over the limit; `None` when empty.
    pub fn over_limit_share(&self) -> Option<f64> {
        (self.count > 0).then(|| self.over_limit as f64 / self.count as f64)
    }

    /// The buckets as text, `bucket:count` in ascending order: `"42:3,43:1"` (empty: `""`).
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self
            .buckets
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        parts.join(",")
    }

    /// The histogram of buckets written by [`to_text`](Self::to_text). The text holds no sum nor
    /// over-limit count: the sum is estimated at the buckets' middles and none is over the
    /// limit, until [`with_totals`](Self::with_totals) sets the recorded ones.
    pub fn from_text(text: &str) -> Result<Self, HistogramError> {
        let mut histogram = Self::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let bad = |reason: &str| HistogramError {
                text: text.chars().take(80).collect(),
                reason: format!("{reason} in {:?}", part.trim()),
            };
            let (bucket, n) = part.trim().split_once(':').ok_or_else(|| bad("no ':'"))?;
            let bucket: u32 = bucket.parse().map_err(|_| bad("bucket not a whole km/h"))?;
            let n: u64 = n.parse().map_err(|_| bad("count not a whole number"))?;
            if n == 0 {
                return Err(bad("empty bucket"));
            }
            *histogram.buckets.entry(bucket).or_default() += n;
            histogram.count += n;
            histogram.sum_kmh += (f64::from(bucket) + 0.5) * n as f64;
        }
        Ok(histogram)
    }

    /// The same buckets with the exact sum of speeds and over-limit count recorded beside them
    /// (a sum that is not finite is ignored; the over-limit count is capped at the count).
    pub fn with_totals(mut self, sum_kmh: f64, over_limit: u64) -> Self {
        if sum_kmh.is_finite() {
            self.sum_kmh = sum_kmh;
        }
        self.over_limit = over_limit.min(self.count);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `p`th percentile of the samples, interpolated linearly (numpy's default).
    fn exact_percentile(samples: &[f64], p: f64) -> f64 {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let pos = p / 100.0 * (s.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
    }

    fn histogram_of(samples: &[f64], limit: f64) -> SpeedHistogram {
        let mut h = SpeedHistogram::new();
        for &v in samples {
            h.add(v, v > limit);
        }
        h
    }

    #[test]
    fn percentiles_of_known_samples_are_within_one_kmh() {
        // A skewed spread of speeds between 20 and 90 km/h, deterministic.
        let samples: Vec<f64> = (0..500)
            .map(|i| {
                let u = (f64::from(i) * 0.618_034).fract();
                20.0 + 70.0 * u * u
            })
            .collect();
        let h = histogram_of(&samples, 50.0);
        for p in [10.0, 50.0, 85.0, 95.0] {
            let (got, want) = (h.percentile(p).unwrap(), exact_percentile(&samples, p));
            assert!((got - want).abs() < 1.0, "p{p}: {got} vs {want}");
        }
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((h.mean().unwrap() - mean).abs() < 1e-9);
        let over = samples.iter().filter(|&&v| v > 50.0).count() as f64 / 500.0;
        assert!((h.over_limit_share().unwrap() - over).abs() < 1e-12);
    }

    #[test]
    fn p85_of_an_even_spread() {
        // 40.0, 40.1, ..., 60.0: p85 is 57.
        let samples: Vec<f64> = (0..=200).map(|i| 40.0 + f64::from(i) / 10.0).collect();
        let p85 = histogram_of(&samples, 100.0).percentile(85.0).unwrap();
        assert!((p85 - 57.0).abs() < 1.0, "{p85}");
    }

    #[test]
    fn merging_equals_adding_all_samples_to_one() {
        let (a, b) = ([30.0, 31.5, 44.2], [31.9, 70.0]);
        let mut merged = histogram_of(&a, 50.0);
        merged.merge(&histogram_of(&b, 50.0));
        let all = histogram_of(&[30.0, 31.5, 44.2, 31.9, 70.0], 50.0);
        assert_eq!(merged.to_text(), all.to_text());
        assert_eq!(merged.count(), 5);
        assert_eq!(merged.over_limit(), 1);
        assert!((merged.sum_kmh() - all.sum_kmh()).abs() < 1e-9);
    }

    #[test]
    fn text_roundtrips_and_totals_are_restored() {
        let h = histogram_of(&[42.3, 42.9, 42.0, 43.5, 99.0], 60.0);
        assert_eq!(h.to_text(), "42:3,43:1,99:1");
        let back = SpeedHistogram::from_text(&h.to_text())
            .unwrap()
            .with_totals(h.sum_kmh(), h.over_limit());
        assert_eq!(back, h);
        assert_eq!(
            SpeedHistogram::from_text("").unwrap(),
            SpeedHistogram::new()
        );
    }

    #[test]
    fn bad_text_says_what_is_wrong() {
        for (text, reason) in [
            ("42:3,43", "no ':'"),
            ("x:1", "bucket"),
            ("-1:1", "bucket"),
            ("42:1.5", "count"),
            ("42:0", "empty bucket"),
        ] {
            let e = SpeedHistogram::from_text(text).unwrap_err().to_string();
            assert!(
                e.contains(reason) && e.contains(&format!("{text:?}")),
                "{e}"
            );
        }
    }

    #[test]
    fn odd_speeds_are_kept_in_range() {
        let mut h = SpeedHistogram::new();
        h.add(f64::NAN, true);
        h.add(-3.0, false);
        h.add(1e12, false);
        assert_eq!(h.count(), 2);
        assert_eq!(h.to_text(), "0:1,1000:1");
        assert_eq!(SpeedHistogram::new().percentile(85.0), None);
    }
}
