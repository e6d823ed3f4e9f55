//! A mergeable percentile summary: counts over logarithmic buckets, the mapping of DDSketch
//! (Masson, Rim and Lee, VLDB 2019). A value `v` (µs, at least 1) falls in bucket
//! `ceil(log_γ v)` with `γ = (1 + α) / (1 − α)`, and a bucket reads back as `2γⁱ / (γ + 1)`,
//! within `α` of every value in it. Merging adds counts bucket by bucket, so the summary of a
//! day is exactly the merge of its hours'.
//!
//! Written here rather than taken from a crate: the mapping is three lines, the percentile must
//! use the live views' nearest-rank rule (the crates interpolate ranks their own way), and the
//! store keeps millions of these, so the encoding is ours too (delta-coded buckets, see
//! [`super::cell`]).

use serde::{Deserialize, Serialize};

/// The relative error of every percentile read from a sketch (plus rounding to a microsecond).
pub const RELATIVE_ERROR: f64 = 0.01;

fn ln_gamma() -> f64 {
    ((1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)).ln()
}

/// Bucket counts, sorted by bucket index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sketch {
    bins: Vec<(u32, u32)>,
}

impl Sketch {
    /// The bucket of `us` microseconds (0 counts as 1).
    pub fn index(us: u32) -> u32 {
        (f64::from(us.max(1)).ln() / ln_gamma()).ceil() as u32
    }

    /// What bucket `i` reads back as, in microseconds.
    pub fn value(i: u32) -> f64 {
        let gamma = ln_gamma().exp();
        2.0 * (f64::from(i) * ln_gamma()).exp() / (gamma + 1.0)
    }

    pub fn add(&mut self, us: u32) {
        self.add_n(Self::index(us), 1);
    }

    fn add_n(&mut self, index: u32, n: u32) {
        match self.bins.binary_search_by_key(&index, |b| b.0) {
            Ok(i) => self.bins[i].1 += n,
            Err(i) => self.bins.insert(i, (index, n)),
        }
    }

    /// Adds `other`'s counts: one pass over both sorted bucket lists.
    pub fn merge(&mut self, other: &Sketch) {
        if other.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            self.bins.clone_from(&other.bins);
            return;
        }
        let mut out = Vec::with_capacity(self.bins.len().max(other.bins.len()));
        let (mut a, mut b) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    out.push((x.0, x.1 + y.1));
                    a.next();
                    b.next();
                }
                (Some(x), Some(y)) if x.0 < y.0 => out.push(*a.next().expect("peeked")),
                (Some(_), Some(_)) | (None, Some(_)) => out.push(*b.next().expect("peeked")),
                (Some(_), None) => out.push(*a.next().expect("peeked")),
                (None, None) => break,
            }
        }
        self.bins = out;
    }

    pub fn count(&self) -> u64 {
        self.bins.iter().map(|b| u64::from(b.1)).sum()
    }

    /// The nearest-rank percentile (`p` in (0, 1]) in microseconds, as the live views define it:
    /// the smallest value with at least `p` of the values at or below it, read back from its
    /// bucket; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for &(i, c) in &self.bins {
            seen += u64::from(c);
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        None
    }

    /// Buckets as (gap from the previous index, count): small numbers, for a compact encoding.
    pub(super) fn to_wire(&self) -> WireSketch {
        let mut last = 0;
        WireSketch(
            self.bins
                .iter()
                .map(|&(i, n)| {
                    let d = i - last;
                    last = i;
                    (d, n)
                })
                .collect(),
        )
    }

    pub(super) fn from_wire(w: WireSketch) -> Self {
        let mut last = 0u32;
        Self {
            bins: w
                .0
                .into_iter()
                .map(|(d, n)| {
                    last = last.saturating_add(d);
                    (last, n)
                })
                .collect(),
        }
    }
}

/// The stored form of a [`Sketch`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct WireSketch(Vec<(u32, u32)>);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value reads back within the stated relative error, over the whole range.
    #[test]
    fn buckets_read_back_within_the_relative_error() {
        let mut v = 1u32;
        while v < u32::MAX / 2 {
            for x in [v, v + 1, v.saturating_mul(3) / 2] {
                let back = Sketch::value(Sketch::index(x));
                let err = (back - f64::from(x)).abs() / f64::from(x);
                assert!(
                    err <= RELATIVE_ERROR + 1e-9,
                    "{x} read back as {back} ({err})"
                );
            }
            v = v.saturating_mul(2);
        }
    }

    /// Against exact nearest-rank percentiles of a skewed sample, the sketch stays within α,
    /// and a merge of two halves is the sketch of the whole.
    #[test]
    fn percentiles_stay_within_the_error_and_merge_exactly() {
        let mut rng = fastrand::Rng::with_seed(7);
        let values: Vec<u32> = (0..5000)
            .map(|_| {
                let base = rng.u32(800..3000);
                if rng.u8(..) < 8 {
                    base * rng.u32(5..400)
                } else {
                    base
                }
            })
            .collect();
        let (mut a, mut b, mut whole) = (Sketch::default(), Sketch::default(), Sketch::default());
        for (k, &v) in values.iter().enumerate() {
            whole.add(v);
            if k % 2 == 0 { a.add(v) } else { b.add(v) }
        }
        a.merge(&b);
        assert_eq!(a, whole);
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for p in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = f64::from(sorted[rank - 1]);
            let got = whole.percentile(p).unwrap();
            assert!(
                (got - exact).abs() <= exact * RELATIVE_ERROR + 1e-6,
                "p{p}: {got} vs exact {exact}"
            );
        }
        assert_eq!(Sketch::default().percentile(0.5), None);
    }

    #[test]
    fn the_wire_form_round_trips() {
        let mut s = Sketch::default();
        for v in [1, 5, 5, 1200, 1300, 99_000, 4_000_000] {
            s.add(v);
        }
        assert_eq!(Sketch::from_wire(s.to_wire()), s);
    }
}
