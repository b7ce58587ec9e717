//! Statistics of the benchmark: percentiles of one batch of samples, and the median with its
//! min–max over repetitions. Pure.

/// The value at percentile `p` (0–100) of `sorted`, by the nearest-rank method: the smallest
/// sample such that at least p % of the samples are at or below it. Returns 0 for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median and 99th percentile of one batch, in ns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batch {
    pub median: f64,
    pub p99: f64,
    pub n: usize,
}

impl Batch {
    pub fn of(samples: &[u64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_unstable();
        Self {
            median: median_sorted_u64(&s),
            p99: percentile(&s, 99.0) as f64,
            n: s.len(),
        }
    }
}

fn median_sorted_u64(s: &[u64]) -> f64 {
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2] as f64,
        n => (s[n / 2 - 1] as f64 + s[n / 2] as f64) / 2.0,
    }
}

/// A figure over repetitions: the median, and the smallest and largest repetition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values (a system that was not measured). NaNs are ignored.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Systems are measured in a different order in every repetition, so that drift on a shared
/// machine (another build starting, the CPU clocking down) spreads over all of them instead of
/// always hitting the one measured last.
pub fn rotation<T: Clone>(items: &[T], rep: usize) -> Vec<T> {
    if items.is_empty() {
        return Vec::new();
    }
    let k = rep % items.len();
    items[k..].iter().chain(&items[..k]).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&s, 50.0), 50);
        assert_eq!(percentile(&s, 99.0), 99);
        assert_eq!(percentile(&s, 100.0), 100);
        assert_eq!(percentile(&s, 0.0), 1, "p0 is the smallest sample");
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 99.0), 0);
        // 10 samples: p99 needs 9.9 of them at or below, so the 10th.
        let s: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&s, 99.0), 10);
    }

    #[test]
    fn batch_sorts_and_takes_the_middle() {
        let b = Batch::of(&[5, 1, 3]);
        assert_eq!((b.median, b.p99, b.n), (3.0, 5.0, 3));
        let b = Batch::of(&[4, 1, 3, 2]);
        assert_eq!(
            b.median, 2.5,
            "an even count averages the two middle samples"
        );
    }

    #[test]
    fn spread_over_repetitions() {
        let s = Spread::of(&[3.0, 1.0, f64::NAN, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN]), None);
    }

    #[test]
    fn rotation_starts_each_repetition_one_later() {
        let s = ["a", "b", "c"];
        assert_eq!(rotation(&s, 0), ["a", "b", "c"]);
        assert_eq!(rotation(&s, 1), ["b", "c", "a"]);
        assert_eq!(rotation(&s, 4), ["b", "c", "a"]);
        assert!(rotation::<u8>(&[], 3).is_empty());
    }
}
