//! The order of one answer, as RFC 2782 says, drawn from a seeded RNG: the
//! order replays from the builder's
//! [`jitter_seed`](crate::PoolBuilder::jitter_seed).
//!
//! The RNG is [`fastrand::Rng`] (wyrand), seeded with
//! [`fastrand::Rng::with_seed`]; its ranges are unbiased. The core keeps its
//! own generator for backoff jitter: this one only shuffles DNS answers.

use super::SrvRecord;

/// Orders records as RFC 2782 says: lowest priority first; within one
/// priority, a weighted random order (weight-0 records first in the list,
/// so they are picked only when the draw is 0: a small chance while others
/// have weight). All weights 0: a uniform shuffle (the RFC leaves it open;
/// this spreads clients like the weighted case would). Target `.` records
/// are left out; a target listed twice keeps its first place.
pub(crate) fn rfc2782_order(records: &[SrvRecord], rng: &mut fastrand::Rng) -> Vec<SrvRecord> {
    let mut sorted: Vec<&SrvRecord> = records.iter().filter(|r| r.target != ".").collect();
    sorted.sort_by_key(|r| r.priority);
    let mut out: Vec<SrvRecord> = Vec::with_capacity(sorted.len());
    for group in sorted.chunk_by(|a, b| a.priority == b.priority) {
        // Zero weights first, the rest as they came (stable).
        let mut left: Vec<&SrvRecord> = group.iter().filter(|r| r.weight == 0).copied().collect();
        left.extend(group.iter().filter(|r| r.weight > 0));
        let total: u64 = left.iter().map(|r| u64::from(r.weight)).sum();
        if total == 0 {
            // Fisher–Yates.
            rng.shuffle(&mut left);
            out.extend(left.into_iter().cloned());
            continue;
        }
        while !left.is_empty() {
            let total: u64 = left.iter().map(|r| u64::from(r.weight)).sum();
            let draw = rng.u64(..=total);
            let mut running = 0u64;
            let pick = left
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= draw
                })
                .expect("the running sum reaches the total");
            out.push(left.remove(pick).clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert((r.target.clone(), r.port)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srv::testing::{rec, targets};
    use fastrand::Rng;

    #[test]
    fn lower_priority_always_comes_first_whatever_the_weights() {
        let records = [
            rec(20, 65535, 389, "c"),
            rec(10, 1, 389, "a"),
            rec(30, 65535, 389, "d"),
            rec(10, 0, 389, "b"),
        ];
        for seed in 0..500 {
            let order = rfc2782_order(&records, &mut Rng::with_seed(seed));
            let prios: Vec<u16> = order.iter().map(|r| r.priority).collect();
            assert_eq!(prios, [10, 10, 20, 30], "seed {seed}");
            assert_eq!(targets(&order[2..]), ["c", "d"]);
        }
    }

    #[test]
    fn first_choice_follows_the_weights_over_many_seeds() {
        let records = [
            rec(0, 70, 389, "a"),
            rec(0, 20, 389, "b"),
            rec(0, 10, 389, "c"),
        ];
        let n = 20_000;
        let mut first = std::collections::HashMap::new();
        for seed in 0..n {
            let order = rfc2782_order(&records, &mut Rng::with_seed(seed));
            assert_eq!(order.len(), 3);
            *first.entry(order[0].target.clone()).or_insert(0u32) += 1;
        }
        for (t, want) in [("a", 0.70), ("b", 0.20), ("c", 0.10)] {
            let got = f64::from(first[t]) / n as f64;
            // Draw in 0..=100: a gets 71/101 of first places (the 0 draw
            // picks the first record), b 20/101, c 10/101.
            assert!((got - want).abs() < 0.02, "{t}: {got} vs {want}");
        }
    }

    #[test]
    fn weight_zero_has_a_small_but_real_chance() {
        let records = [rec(0, 0, 389, "zero"), rec(0, 100, 389, "heavy")];
        let n = 20_000u32;
        let zero_first = (0..u64::from(n))
            .filter(|&s| rfc2782_order(&records, &mut Rng::with_seed(s))[0].target == "zero")
            .count() as f64;
        let share = zero_first / f64::from(n);
        // Chance 1/101 per RFC 2782's draw in 0..=total.
        assert!(share > 0.004 && share < 0.02, "{share}");
    }

    #[test]
    fn all_zero_weights_shuffle_uniformly() {
        let records = [rec(0, 0, 1, "a"), rec(0, 0, 2, "b"), rec(0, 0, 3, "c")];
        let mut first = std::collections::HashMap::new();
        for seed in 0..9_000 {
            let order = rfc2782_order(&records, &mut Rng::with_seed(seed));
            *first.entry(order[0].target.clone()).or_insert(0u32) += 1;
        }
        for t in ["a", "b", "c"] {
            assert!((2_700..3_300).contains(&first[t]), "{t}: {first:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_order() {
        let records: Vec<SrvRecord> = (0..8).map(|i| rec(0, 10, 389 + i, "h")).collect();
        let a = rfc2782_order(&records, &mut Rng::with_seed(42));
        let b = rfc2782_order(&records, &mut Rng::with_seed(42));
        assert_eq!(a, b);
        let differs = (0..20).any(|s| rfc2782_order(&records, &mut Rng::with_seed(s)) != a);
        assert!(differs, "the order depends on the seed");
    }

    #[test]
    fn a_duplicate_target_keeps_its_best_place() {
        let order = rfc2782_order(
            &[
                rec(10, 0, 389, "a"),
                rec(0, 0, 389, "a"),
                rec(5, 0, 389, "b"),
            ],
            &mut Rng::with_seed(9),
        );
        assert_eq!(order.len(), 2);
        assert_eq!((order[0].priority, order[0].target.as_str()), (0, "a"));
    }
}
