//! Minimum-cost assignment between two sets (tracks and detections) with a cost threshold, with
//! the semantics of ByteTrack's `linear_assignment(cost, thresh)` (`lap.lapjv` with
//! `extend_cost=True, cost_limit=thresh`): leaving a row or a column unmatched costs
//! `thresh / 2`, so a pair is matched only when that lowers the total, and a pair costing more
//! than `thresh` never is. Solved exactly by the Hungarian method (Kuhn-Munkres with
//! potentials) on the extended `(rows + cols)` square matrix of each connected component of the
//! admissible pairs: with boxes, a track can only pair with the few detections near it, so a
//! frame of hundreds of objects is many tiny problems instead of one cubic one.

/// The result of an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// Matched `(row, column)` pairs, by row.
    pub matches: Vec<(usize, usize)>,
    /// Rows left unmatched.
    pub unmatched_rows: Vec<usize>,
    /// Columns left unmatched.
    pub unmatched_cols: Vec<usize>,
}

fn admissible(v: f32, threshold: f32) -> bool {
    v <= threshold && v.is_finite()
}

/// Solves the assignment for `cost` (`rows x cols`, row-major), leaving any pair costing more
/// than `threshold` unmatched. The matched set has the least total cost among assignments that
/// match as many admissible pairs as possible.
pub fn assign(cost: &[f32], rows: usize, cols: usize, threshold: f32) -> Assignment {
    assert_eq!(cost.len(), rows * cols, "cost matrix size");
    // Components of the bipartite graph of admissible pairs (rows are nodes 0..rows, columns
    // rows..rows+cols); pairs in different components never compete.
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut any = vec![false; rows + cols];
    for r in 0..rows {
        for c in 0..cols {
            if admissible(cost[r * cols + c], threshold) {
                any[r] = true;
                any[rows + c] = true;
                let (a, b) = (root(&mut parent, r), root(&mut parent, rows + c));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut members: std::collections::BTreeMap<usize, (Vec<usize>, Vec<usize>)> =
        std::collections::BTreeMap::new();
    for node in (0..rows + cols).filter(|&n| any[n]) {
        let entry = members.entry(root(&mut parent, node)).or_default();
        if node < rows {
            entry.0.push(node);
        } else {
            entry.1.push(node - rows);
        }
    }
    let mut matches = Vec::new();
    for (sub_rows, sub_cols) in members.values() {
        let sub: Vec<f32> = sub_rows
            .iter()
            .flat_map(|&r| sub_cols.iter().map(move |&c| cost[r * cols + c]))
            .collect();
        let a = assign_dense(&sub, sub_rows.len(), sub_cols.len(), threshold);
        matches.extend(a.matches.iter().map(|&(r, c)| (sub_rows[r], sub_cols[c])));
    }
    matches.sort_unstable();
    let mut row_used = vec![false; rows];
    let mut col_used = vec![false; cols];
    for &(r, c) in &matches {
        row_used[r] = true;
        col_used[c] = true;
    }
    Assignment {
        matches,
        unmatched_rows: (0..rows).filter(|&r| !row_used[r]).collect(),
        unmatched_cols: (0..cols).filter(|&c| !col_used[c]).collect(),
    }
}

/// [`assign`] on the whole matrix at once.
fn assign_dense(cost: &[f32], rows: usize, cols: usize, threshold: f32) -> Assignment {
    if rows == 0 || cols == 0 {
        return Assignment {
            matches: Vec::new(),
            unmatched_rows: (0..rows).collect(),
            unmatched_cols: (0..cols).collect(),
        };
    }
    // Extended square matrix: [cost | row dummies; column dummies | 0]. Dummies on the
    // diagonals cost thresh/2; everything off them is forbidden.
    let n = rows + cols;
    let big = 1e9_f64;
    let half = f64::from(threshold) / 2.0;
    let at = |r: usize, c: usize| -> f64 {
        match (r < rows, c < cols) {
            (true, true) => {
                let v = cost[r * cols + c];
                if admissible(v, threshold) {
                    f64::from(v)
                } else {
                    big
                }
            }
            (true, false) => {
                if c - cols == r {
                    half
                } else {
                    big
                }
            }
            (false, true) => {
                if r - rows == c {
                    half
                } else {
                    big
                }
            }
            (false, false) => 0.0,
        }
    };
    // e-maxx formulation, 1-based: u, v potentials, p[col] = row matched to col.
    let mut u = vec![0.0_f64; n + 1];
    let mut v = vec![0.0_f64; n + 1];
    let mut p = vec![0_usize; n + 1];
    let mut way = vec![0_usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = at(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut row_match = vec![None; rows];
    for (c, &row) in p.iter().enumerate().skip(1).map(|(j, r)| (j - 1, r)) {
        let r = row - 1;
        if r < rows && c < cols && at(r, c) < big {
            row_match[r] = Some(c);
        }
    }
    let mut out = Assignment::default();
    let mut col_used = vec![false; cols];
    for (r, m) in row_match.iter().enumerate() {
        match m {
            Some(c) => {
                out.matches.push((r, *c));
                col_used[*c] = true;
            }
            None => out.unmatched_rows.push(r),
        }
    }
    out.unmatched_cols = (0..cols).filter(|c| !col_used[*c]).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_three_by_three() {
        // Optimal: (0,1) + (1,0) + (2,2) = 1 + 2 + 2 = 5 (greedy would take (0,0)=... worse).
        #[rustfmt::skip]
        let cost = [
            4.0, 1.0, 3.0,
            2.0, 0.0, 5.0,
            3.0, 2.0, 2.0,
        ];
        let a = assign(&cost, 3, 3, 10.0);
        assert_eq!(a.matches, vec![(0, 1), (1, 0), (2, 2)]);
        assert!(a.unmatched_rows.is_empty() && a.unmatched_cols.is_empty());
    }

    #[test]
    fn rectangular_in_both_directions() {
        // 2 rows, 3 cols: rows take their cheapest distinct columns.
        let a = assign(&[0.9, 0.1, 0.5, 0.2, 0.3, 0.8], 2, 3, 1.0);
        assert_eq!(a.matches, vec![(0, 1), (1, 0)]);
        assert_eq!(a.unmatched_cols, vec![2]);
        // 3 rows, 1 col.
        let a = assign(&[0.5, 0.2, 0.7], 3, 1, 1.0);
        assert_eq!(a.matches, vec![(1, 0)]);
        assert_eq!(a.unmatched_rows, vec![0, 2]);
    }

    #[test]
    fn threshold_leaves_expensive_pairs_unmatched() {
        let a = assign(&[0.9, 0.95, 0.2, 0.99], 2, 2, 0.8);
        assert_eq!(a.matches, vec![(1, 0)]);
        assert_eq!((a.unmatched_rows, a.unmatched_cols), (vec![0], vec![1]));
    }

    #[test]
    fn a_good_match_is_not_traded_for_two_poor_ones() {
        // (0,0) = 0.1 and two unmatched (0.4 + 0.4) total 0.9, less than (0,1) + (1,0) = 1.58.
        let a = assign(&[0.1, 0.79, 0.79, 0.95], 2, 2, 0.8);
        assert_eq!(a.matches, vec![(0, 0)]);
        // With cheaper cross pairs both are matched: 0.3 + 0.3 < 0.1 + 0.8.
        let a = assign(&[0.1, 0.3, 0.3, 0.95], 2, 2, 0.8);
        assert_eq!(a.matches, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn empty_inputs() {
        let a = assign(&[], 0, 3, 0.5);
        assert_eq!(a.unmatched_cols, vec![0, 1, 2]);
        let a = assign(&[], 2, 0, 0.5);
        assert_eq!(a.unmatched_rows, vec![0, 1]);
    }

    #[test]
    fn agrees_with_brute_force_on_random_matrices() {
        // Deterministic pseudo-random costs; compare total cost and match count with brute force.
        let mut seed = 12345_u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 1000) as f32 / 1000.0
        };
        for _ in 0..200 {
            let (rows, cols) = (1 + (next() * 4.0) as usize, 1 + (next() * 4.0) as usize);
            let cost: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
            let thresh = 0.6;
            let a = assign(&cost, rows, cols, thresh);
            let matched: f32 = a.matches.iter().map(|&(r, c)| cost[r * cols + c]).sum();
            let unmatched = (rows + cols - 2 * a.matches.len()) as f32 * thresh / 2.0;
            let best = brute(&cost, rows, cols, thresh);
            let total = matched + unmatched;
            assert!(
                (total - best).abs() < 1e-4,
                "{total} vs {best} for {cost:?}"
            );
        }
    }

    /// Least total cost, unmatched rows and columns costing thresh/2, by trying every matching.
    #[test]
    fn components_give_the_same_total_as_the_whole_matrix() {
        // 40 tracks by 45 detections, each admissible only near its own diagonal position.
        let (rows, cols, thresh) = (40, 45, 0.8);
        let cost: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let (r, c) = ((i / cols) as f32, (i % cols) as f32);
                let d = (r - c).abs();
                if d < 3.0 {
                    0.1 + 0.2 * d + 0.01 * ((i * 7) % 5) as f32
                } else {
                    1.0
                }
            })
            .collect();
        let total = |a: &Assignment| -> f32 {
            let matched: f32 = a.matches.iter().map(|&(r, c)| cost[r * cols + c]).sum();
            matched + (rows + cols - 2 * a.matches.len()) as f32 * thresh / 2.0
        };
        let split = assign(&cost, rows, cols, thresh);
        let whole = assign_dense(&cost, rows, cols, thresh);
        assert!((total(&split) - total(&whole)).abs() < 1e-4);
        assert_eq!(split.matches.len(), whole.matches.len());
        assert_eq!(split.unmatched_cols.len(), cols - split.matches.len());
    }

    fn brute(cost: &[f32], rows: usize, cols: usize, thresh: f32) -> f32 {
        fn go(
            r: usize,
            used: &mut Vec<bool>,
            cost: &[f32],
            rows: usize,
            cols: usize,
            t: f32,
        ) -> f32 {
            if r == rows {
                return used.iter().filter(|u| !**u).count() as f32 * t / 2.0;
            }
            let mut best = t / 2.0 + go(r + 1, used, cost, rows, cols, t);
            for c in 0..cols {
                let v = cost[r * cols + c];
                if !used[c] && v <= t {
                    used[c] = true;
                    best = best.min(v + go(r + 1, used, cost, rows, cols, t));
                    used[c] = false;
                }
            }
            best
        }
        go(0, &mut vec![false; cols], cost, rows, cols, thresh)
    }
}
