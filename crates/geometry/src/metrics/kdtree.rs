//! A static 3-d tree for exact nearest-neighbour distances between point
//! sets, so that the Chamfer distance scales to 10^5 points and beyond.
//!
//! Written here rather than taken from a crate: the metrics need one query
//! (nearest squared distance, in f64 from f32 input, so the result agrees
//! with an independent f64 computation to rounding), and sixty lines are
//! less to audit than a dependency with its own float and bucket policies.

/// Points per leaf; below this a scan beats further splitting.
const LEAF: usize = 12;

pub struct KdTree {
    /// The points, permuted so that every subtree is a contiguous range.
    points: Vec<[f64; 3]>,
    /// Split axis of the node whose median sits at this position.
    axis: Vec<u8>,
}

impl KdTree {
    pub fn new(points: &[[f32; 3]]) -> KdTree {
        let mut tree = KdTree {
            points: points.iter().map(|p| p.map(f64::from)).collect(),
            axis: vec![0; points.len()],
        };
        tree.build(0, points.len());
        tree
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn build(&mut self, lo: usize, hi: usize) {
        if hi - lo <= LEAF {
            return;
        }
        // Split the widest extent: robust on flat or elongated point sets
        // where cycling the axes would make thin, useless cells.
        let mut min = [f64::INFINITY; 3];
        let mut max = [f64::NEG_INFINITY; 3];
        for p in &self.points[lo..hi] {
            for k in 0..3 {
                min[k] = min[k].min(p[k]);
                max[k] = max[k].max(p[k]);
            }
        }
        let axis = (0..3)
            .max_by(|&a, &b| (max[a] - min[a]).total_cmp(&(max[b] - min[b])))
            .unwrap_or(0);
        let mid = (lo + hi) / 2;
        self.points[lo..hi].select_nth_unstable_by(mid - lo, |p, q| p[axis].total_cmp(&q[axis]));
        self.axis[mid] = axis as u8;
        self.build(lo, mid);
        self.build(mid + 1, hi);
    }

    /// Squared Euclidean distance from `q` to the nearest point; +inf for an
    /// empty tree.
    pub fn nearest_squared(&self, q: [f32; 3]) -> f64 {
        let q = q.map(f64::from);
        let mut best = f64::INFINITY;
        self.search(0, self.points.len(), &q, &mut best);
        best
    }

    fn search(&self, lo: usize, hi: usize, q: &[f64; 3], best: &mut f64) {
        if hi - lo <= LEAF {
            for p in &self.points[lo..hi] {
                *best = best.min(dist2(p, q));
            }
            return;
        }
        let mid = (lo + hi) / 2;
        let axis = usize::from(self.axis[mid]);
        let p = &self.points[mid];
        *best = best.min(dist2(p, q));
        let d = q[axis] - p[axis];
        let (near, far) = if d < 0.0 {
            ((lo, mid), (mid + 1, hi))
        } else {
            ((mid + 1, hi), (lo, mid))
        };
        self.search(near.0, near.1, q, best);
        if d * d < *best {
            self.search(far.0, far.1, q, best);
        }
    }
}

#[inline]
fn dist2(p: &[f64; 3], q: &[f64; 3]) -> f64 {
    let (a, b, c) = (p[0] - q[0], p[1] - q[1], p[2] - q[2]);
    a * a + b * b + c * c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exhaustive_search() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        // Clustered, flat and duplicated points: the hard cases for splits.
        let mut pts: Vec<[f32; 3]> = (0..3000).map(|_| [next(), next(), next()]).collect();
        pts.extend((0..500).map(|_| [next(), next(), 0.0]));
        pts.extend(std::iter::repeat_n([0.25, 0.25, 0.25], 40));
        let tree = KdTree::new(&pts);
        for _ in 0..500 {
            let q = [next() * 1.2, next() * 1.2, next() * 1.2];
            let brute = pts
                .iter()
                .map(|p| dist2(&p.map(f64::from), &q.map(f64::from)))
                .fold(f64::INFINITY, f64::min);
            assert_eq!(tree.nearest_squared(q), brute);
        }
        assert_eq!(tree.nearest_squared([0.25; 3]), 0.0);
        assert!(KdTree::new(&[]).nearest_squared([0.0; 3]).is_infinite());
    }
}
