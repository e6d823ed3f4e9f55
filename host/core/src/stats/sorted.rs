//! A sorted multiset of durations (in microseconds) with exact rank queries. Windows hold at most
//! a few thousand samples (an hour at a 1 s interval), so a sorted `Vec` with binary-search insert
//! and remove beats tree structures: it is one small allocation with O(1) percentile lookups.

#[derive(Debug, Default, Clone)]
pub(crate) struct SortedMicros {
    values: Vec<u32>,
    sum: u64,
    /// Loading many values at once: append now, sort once in [`Self::finish_loading`].
    loading: bool,
}

impl SortedMicros {
    pub fn insert(&mut self, v: u32) {
        if self.loading {
            self.values.push(v);
        } else {
            let i = self.values.partition_point(|&x| x < v);
            self.values.insert(i, v);
        }
        self.sum += u64::from(v);
    }

    /// Appends until [`Self::finish_loading`], for loading a known set in O(n log n).
    pub(crate) fn start_loading(&mut self) {
        self.loading = true;
    }

    pub(crate) fn finish_loading(&mut self) {
        self.loading = false;
        self.values.sort_unstable();
    }

    /// Removes one copy of `v`, which must have been inserted.
    pub fn remove(&mut self, v: u32) {
        if let Ok(i) = self.values.binary_search(&v) {
            self.values.remove(i);
            self.sum -= u64::from(v);
        } else {
            debug_assert!(false, "removed a value that was never inserted");
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn mean(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.sum as f64 / self.values.len() as f64)
    }

    pub fn max(&self) -> Option<u32> {
        self.values.last().copied()
    }

    /// Nearest-rank percentile, `p` in (0, 1]: the smallest value with at least `p` of the values
    /// at or below it.
    pub fn percentile(&self, p: f64) -> Option<u32> {
        if self.values.is_empty() {
            return None;
        }
        let rank = (p * self.values.len() as f64).ceil() as usize;
        Some(self.values[rank.clamp(1, self.values.len()) - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = SortedMicros::default();
        assert_eq!(s.percentile(0.5), None);
        assert_eq!(s.mean(), None);
        for v in (1..=100).rev() {
            s.insert(v);
        }
        assert_eq!(s.percentile(0.5), Some(50));
        assert_eq!(s.percentile(0.95), Some(95));
        assert_eq!(s.percentile(0.99), Some(99));
        assert_eq!(s.percentile(1.0), Some(100));
        assert_eq!(s.max(), Some(100));
        assert_eq!(s.mean(), Some(50.5));
        s.remove(100);
        s.remove(1);
        assert_eq!(s.len(), 98);
        assert_eq!(s.max(), Some(99));
        assert_eq!(s.mean(), Some(50.5));
    }

    #[test]
    fn duplicates_are_counted_and_removed_one_at_a_time() {
        let mut s = SortedMicros::default();
        for v in [5, 5, 5, 9] {
            s.insert(v);
        }
        s.remove(5);
        assert_eq!(s.len(), 3);
        assert_eq!(s.percentile(0.5), Some(5));
        assert_eq!(s.percentile(1.0), Some(9));
    }
}
