//! One datapoint's statistics: sample count, sum, minimum, maximum and a log-bucketed histogram
//! for percentiles. Datapoints merge, so a period is the merge of its minutes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Buckets per doubling: a bucket spans a factor of 2^(1/8) (about 9 %), so a percentile is
/// within about 4.5 % of the exact value (and always inside [minimum, maximum]).
const BUCKETS_PER_DOUBLING: f64 = 8.0;

/// Number of buckets: bucket 0 holds values below 1, then 8 per doubling up to 2^64.
pub const BUCKETS: usize = 1 + 8 * 64;

/// The bucket of a value.
pub fn bucket_of(value: f64) -> usize {
    // NaN and everything below 1 land in bucket 0.
    if value.is_nan() || value < 1.0 {
        return 0;
    }
    let index = 1 + (value.log2() * BUCKETS_PER_DOUBLING) as usize;
    index.min(BUCKETS - 1)
}

/// A representative value of a bucket (its geometric middle).
fn bucket_value(index: usize) -> f64 {
    if index == 0 {
        return 0.0;
    }
    ((index as f64 - 0.5) / BUCKETS_PER_DOUBLING).exp2()
}

/// The statistics of the samples of one series in one interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(rename = "n")]
    pub count: f64,
    #[serde(rename = "s")]
    pub sum: f64,
    #[serde(rename = "lo")]
    pub min: f64,
    #[serde(rename = "hi")]
    pub max: f64,
    /// Bucket index → samples; empty for statistic sets (PutMetricData `StatisticValues`),
    /// which carry no distribution.
    #[serde(rename = "h", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histogram: BTreeMap<u16, f64>,
}

impl Stat {
    /// One sample.
    pub fn single(value: f64) -> Stat {
        Stat::repeated(value, 1.0)
    }

    /// A value seen `count` times.
    pub fn repeated(value: f64, count: f64) -> Stat {
        let mut histogram = BTreeMap::new();
        histogram.insert(bucket_of(value) as u16, count);
        Stat {
            count,
            sum: value * count,
            min: value,
            max: value,
            histogram,
        }
    }

    /// A statistic set without distribution.
    pub fn set(count: f64, sum: f64, min: f64, max: f64) -> Stat {
        Stat {
            count,
            sum,
            min,
            max,
            histogram: BTreeMap::new(),
        }
    }

    pub fn merge(&mut self, other: &Stat) {
        if other.count <= 0.0 {
            return;
        }
        if self.count <= 0.0 {
            *self = other.clone();
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        for (bucket, count) in &other.histogram {
            *self.histogram.entry(*bucket).or_insert(0.0) += count;
        }
    }

    pub fn average(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// The `p`-th percentile (0 < p ≤ 100), when the samples' distribution is known.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let known: f64 = self.histogram.values().sum();
        if known <= 0.0 || !(p > 0.0 && p <= 100.0) {
            return None;
        }
        if self.count <= 1.0 || self.min == self.max {
            return Some(self.min);
        }
        if p >= 100.0 {
            return Some(self.max);
        }
        let rank = (p / 100.0 * known).ceil().max(1.0);
        let mut seen = 0.0;
        for (bucket, count) in &self.histogram {
            seen += count;
            if seen >= rank {
                return Some(bucket_value(usize::from(*bucket)).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// A named statistic: `SampleCount`, `Sum`, `Minimum`, `Maximum`, `Average` or `pNN(.N)`.
    pub fn statistic(&self, name: &str) -> Option<f64> {
        match name {
            "SampleCount" => Some(self.count),
            "Sum" => Some(self.sum),
            "Minimum" => Some(self.min),
            "Maximum" => Some(self.max),
            "Average" => Some(self.average()),
            other => self.percentile(parse_percentile(other)?),
        }
    }
}

/// `p90` → 90.0, `p99.9` → 99.9; `None` for anything else.
pub fn parse_percentile(name: &str) -> Option<f64> {
    let number = name.strip_prefix('p')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    (value > 0.0 && value <= 100.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_merged_samples() {
        let mut stat = Stat::single(10.0);
        for value in 11..=1000 {
            stat.merge(&Stat::single(value as f64));
        }
        assert_eq!(stat.count, 991.0);
        assert_eq!(stat.min, 10.0);
        assert_eq!(stat.max, 1000.0);
        assert_eq!(stat.statistic("Sum"), Some((10..=1000).sum::<i32>() as f64));
        let p50 = stat.statistic("p50").expect("p50");
        assert!((p50 - 505.0).abs() / 505.0 < 0.06, "{p50}");
        let p99 = stat.statistic("p99").expect("p99");
        assert!((p99 - 990.0).abs() / 990.0 < 0.06, "{p99}");
        assert_eq!(stat.statistic("p100"), Some(1000.0));
    }

    #[test]
    fn statistic_sets_have_no_percentiles() {
        let stat = Stat::set(3.0, 30.0, 5.0, 15.0);
        assert_eq!(stat.statistic("Average"), Some(10.0));
        assert_eq!(stat.statistic("p90"), None);
        assert_eq!(parse_percentile("p99.9"), Some(99.9));
        assert_eq!(parse_percentile("p0"), None);
        assert_eq!(parse_percentile("tm99"), None);
    }

    #[test]
    fn a_single_value_is_every_percentile() {
        let stat = Stat::repeated(1234.0, 10.0);
        assert_eq!(stat.percentile(1.0), Some(1234.0));
        assert_eq!(stat.percentile(99.0), Some(1234.0));
    }
}
