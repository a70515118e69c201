//! The Earth Mover's distance between two equal-size point sets through an
//! exact optimal bijection (the assignment problem).
//!
//! Solved by the shortest-augmenting-path form of the Hungarian method with
//! dual potentials (Jonker-Volgenant style): O(n^3) time, O(n^2) memory for
//! the cost matrix, exact up to floating-point rounding of the sums. At the
//! paper's 500 points that is about 10^8 steps, a fraction of a second.

/// Optimal assignment for a square cost matrix given row by row
/// (`cost[i * n + j]` is the cost of giving row i column j): returns the
/// column of each row, minimising the total cost. Costs must be finite.
pub fn optimal_assignment(cost: &[f64], n: usize) -> Vec<usize> {
    assert_eq!(cost.len(), n * n, "cost matrix is not n x n");
    // 1-based internally: index 0 is the virtual column the augmenting
    // path starts from.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; n + 1];
    let mut row_of = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if used[j] {
                    continue;
                }
                let reduced = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        // Flip the alternating path back to the virtual column.
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut column = vec![0; n];
    for j in 1..=n {
        column[row_of[j] - 1] = j - 1;
    }
    column
}

/// The paper's EMD: `min over bijections phi of sum ||x - phi(x)||_2`
/// (Euclidean, not squared). Returns the sum; divide by the point count for
/// the mean that the paper's tables report. Uses the first
/// `min(a.len(), b.len())` points of each set; 0 for empty sets.
pub fn earth_movers_sum(a: &[[f32; 3]], b: &[[f32; 3]]) -> f64 {
    let n = a.len().min(b.len());
    let cost = distance_matrix(&a[..n], &b[..n]);
    optimal_assignment(&cost, n)
        .iter()
        .enumerate()
        .map(|(i, &j)| cost[i * n + j])
        .sum()
}

fn distance_matrix(a: &[[f32; 3]], b: &[[f32; 3]]) -> Vec<f64> {
    let mut cost = Vec::with_capacity(a.len() * b.len());
    for p in a {
        let p = p.map(f64::from);
        for q in b {
            let q = q.map(f64::from);
            let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2);
            // A non-finite coordinate would poison the potentials; such a
            // pair is simply the worst possible match.
            cost.push(if d.is_finite() { d.sqrt() } else { 1e30 });
        }
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for k in 0..=p.len() {
                let mut q = p.clone();
                q.insert(k, n - 1);
                out.push(q);
            }
        }
        out
    }

    fn lcg(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    #[test]
    fn assignment_is_optimal_against_all_permutations() {
        for n in 1..=7 {
            let perms = permutations(n);
            for seed in 0..25 {
                let mut r = lcg(seed * 31 + n as u64);
                let a: Vec<[f32; 3]> = (0..n).map(|_| [r(), r(), r()]).collect();
                // Some ties and repeated points among the cases.
                let b: Vec<[f32; 3]> = (0..n)
                    .map(|k| {
                        if seed % 5 == 0 && k > 0 {
                            a[k - 1]
                        } else {
                            [r(), r(), r()]
                        }
                    })
                    .collect();
                let cost = distance_matrix(&a, &b);
                let brute = perms
                    .iter()
                    .map(|p| (0..n).map(|i| cost[i * n + p[i]]).sum::<f64>())
                    .fold(f64::INFINITY, f64::min);
                let got = optimal_assignment(&cost, n);
                let mut seen = got.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "not a bijection");
                let ours = earth_movers_sum(&a, &b);
                assert!(
                    (ours - brute).abs() <= 1e-12 * brute.max(1.0),
                    "n {n} seed {seed}: {ours} vs {brute}"
                );
            }
        }
    }

    #[test]
    fn emd_of_a_shifted_set_is_the_shift() {
        let mut r = lcg(9);
        let a: Vec<[f32; 3]> = (0..50).map(|_| [r(), r(), r()]).collect();
        // A tiny shift keeps the identity optimal: every other pairing is
        // longer by far more than the shift can save.
        let b: Vec<[f32; 3]> = a.iter().rev().map(|p| [p[0] + 1e-4, p[1], p[2]]).collect();
        let sum = earth_movers_sum(&a, &b);
        assert!((sum / 50.0 - 1e-4).abs() < 2e-7, "{sum}");
        assert_eq!(earth_movers_sum(&a, &a), 0.0);
        assert_eq!(earth_movers_sum(&[], &a), 0.0);
    }
}
