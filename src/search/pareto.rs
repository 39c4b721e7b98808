//! Pareto utilities for (maximise accuracy, minimise parameters): dominance, non-dominated sorting,
//! crowding distance and the 2-D hypervolume.

/// One point in objective space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub accuracy: f64,
    pub params: f64,
}

/// `a` dominates `b`: no worse in both objectives and better in one.
pub fn dominates(a: Point, b: Point) -> bool {
    a.accuracy >= b.accuracy && a.params <= b.params && (a.accuracy > b.accuracy || a.params < b.params)
}

/// Fronts of NSGA-II's fast non-dominated sort: indices of front 0 (the Pareto front), front 1, …
pub fn non_dominated_sort(points: &[Point]) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut dominated_by_count = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..n {
            if i != j && dominates(points[i], points[j]) {
                dominates_list[i].push(j);
            } else if i != j && dominates(points[j], points[i]) {
                dominated_by_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates_list[i] {
                dominated_by_count[j] -= 1;
                if dominated_by_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        current.sort_unstable();
        fronts.push(std::mem::take(&mut current));
        current = next;
    }
    fronts
}

/// Crowding distance of each member of one front (same order as `front`); boundary points get
/// infinity so they are always kept.
pub fn crowding_distance(points: &[Point], front: &[usize]) -> Vec<f64> {
    let mut distance = vec![0.0; front.len()];
    if front.len() <= 2 {
        return vec![f64::INFINITY; front.len()];
    }
    let objectives: [fn(&Point) -> f64; 2] = [|p| p.accuracy, |p| p.params];
    for objective in objectives {
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| objective(&points[front[a]]).total_cmp(&objective(&points[front[b]])));
        let (lo, hi) = (objective(&points[front[order[0]]]), objective(&points[front[order[order.len() - 1]]]));
        distance[order[0]] = f64::INFINITY;
        distance[order[order.len() - 1]] = f64::INFINITY;
        if hi > lo {
            for w in 1..order.len() - 1 {
                let gap = objective(&points[front[order[w + 1]]]) - objective(&points[front[order[w - 1]]]);
                distance[order[w]] += gap / (hi - lo);
            }
        }
    }
    distance
}

/// Indices of the Pareto front (front 0), sorted by parameters ascending.
pub fn pareto_front(points: &[Point]) -> Vec<usize> {
    let mut front = non_dominated_sort(points).into_iter().next().unwrap_or_default();
    front.sort_by(|&a, &b| points[a].params.total_cmp(&points[b].params));
    front
}

/// Area dominated by `points` and bounded by `reference` (accuracy floor, parameter ceiling).
/// Points not better than the reference in both objectives add nothing.
pub fn hypervolume(points: &[Point], reference: Point) -> f64 {
    let mut useful: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.accuracy > reference.accuracy && p.params < reference.params)
        .collect();
    // Sweep by parameters ascending; each point adds the slab its accuracy gains over the best so far.
    useful.sort_by(|a, b| a.params.total_cmp(&b.params));
    let mut area = 0.0;
    let mut best = reference.accuracy;
    for p in useful {
        if p.accuracy > best {
            area += (reference.params - p.params) * (p.accuracy - best);
            best = p.accuracy;
        }
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(f64, f64)]) -> Vec<Point> {
        v.iter().map(|&(accuracy, params)| Point { accuracy, params }).collect()
    }

    #[test]
    fn dominance_cases() {
        let cases = [
            ((0.8, 10.0), (0.7, 20.0), true),
            ((0.8, 10.0), (0.8, 10.0), false),
            ((0.8, 10.0), (0.8, 20.0), true),
            ((0.8, 10.0), (0.9, 20.0), false),
        ];
        for ((a1, p1), (a2, p2), expected) in cases {
            let (a, b) = (Point { accuracy: a1, params: p1 }, Point { accuracy: a2, params: p2 });
            assert_eq!(dominates(a, b), expected, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn sorts_into_hand_computed_fronts() {
        // 0 (0.9,100) 1 (0.8,50) 2 (0.7,10) are mutually non-dominated; 3 (0.75,60) is beaten by
        // 1; 4 (0.6,200) by everything; 5 equals 1.
        let p = pts(&[(0.9, 100.0), (0.8, 50.0), (0.7, 10.0), (0.75, 60.0), (0.6, 200.0), (0.8, 50.0)]);
        assert_eq!(non_dominated_sort(&p), vec![vec![0, 1, 2, 5], vec![3], vec![4]]);
        assert_eq!(pareto_front(&p), vec![2, 1, 5, 0]);
    }

    #[test]
    fn crowding_keeps_extremes_and_spreads_the_middle() {
        let p = pts(&[(0.9, 100.0), (0.8, 50.0), (0.7, 10.0), (0.85, 90.0)]);
        let d = crowding_distance(&p, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[2].is_infinite());
        // point 1: accuracy neighbours 0.7 and 0.85 → 0.15/0.2; params 10 and 90 → 80/90.
        assert!((d[1] - (0.75 + 80.0 / 90.0)).abs() < 1e-12);
        // point 3: accuracy neighbours 0.8, 0.9 → 0.5; params 50, 100 → 50/90.
        assert!((d[3] - (0.5 + 50.0 / 90.0)).abs() < 1e-12);
    }

    #[test]
    fn hypervolume_of_a_staircase() {
        let reference = Point { accuracy: 0.5, params: 100.0 };
        let p = pts(&[(0.7, 10.0), (0.9, 60.0), (0.6, 50.0), (0.4, 1.0)]);
        // (100-10)·(0.7-0.5) + (100-60)·(0.9-0.7) = 18 + 8
        assert!((hypervolume(&p, reference) - 26.0).abs() < 1e-9);
        assert_eq!(hypervolume(&[], reference), 0.0);
    }
}
