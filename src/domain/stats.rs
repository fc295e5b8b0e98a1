//! Which model serves a class best: the learners' choices between answers
//! to the same turn, as wins, ties and losses, and a Bradley-Terry score
//! on an Elo-like scale.

use std::collections::{BTreeMap, BTreeSet};

/// One chosen turn: the models that answered it, and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenTurn {
    pub models: BTreeSet<String>,
    /// `Some(model)`: that model's answer was chosen; `None`: a tie or none
    /// good (a tie between every pair).
    pub winner: Option<String>,
}

/// A model's record over the turns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub wins: i64,
    pub ties: i64,
    pub losses: i64,
    /// `None` for a model that met no other.
    pub score: Option<f64>,
}

/// Iterations of the minorization-maximization fit; it converges in far
/// fewer for the handful of models a class compares.
const ITERATIONS: usize = 500;

/// Wins, ties and losses per model (each pair of models in a turn is one
/// comparison: the chosen model beats each other one; a tie or "none good"
/// ties every pair), and each model's Bradley-Terry strength fitted to
/// them, shown as `1000 + 400 log10(strength)` with the strengths' geometric
/// mean at 1 (1000). Every pair that met also gets one virtual tie, so an
/// unbeaten model still has a finite score.
pub fn records(turns: &[ChosenTurn]) -> BTreeMap<String, Record> {
    let mut records: BTreeMap<String, Record> = BTreeMap::new();
    // Points (a win 1, a tie 1/2) and meetings per ordered pair.
    let mut points: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut met: BTreeMap<(String, String), f64> = BTreeMap::new();
    for turn in turns {
        let models: Vec<&String> = turn.models.iter().collect();
        for (i, a) in models.iter().enumerate() {
            for b in &models[i + 1..] {
                let (a, b) = ((*a).clone(), (*b).clone());
                let (pa, pb) = match &turn.winner {
                    Some(w) if *w == a => (1.0, 0.0),
                    Some(w) if *w == b => (0.0, 1.0),
                    // Chosen: neither of these two won; they don't meet.
                    Some(_) => continue,
                    None => (0.5, 0.5),
                };
                let tally = |r: &mut Record, p: f64| {
                    if p > 0.75 {
                        r.wins += 1
                    } else if p < 0.25 {
                        r.losses += 1
                    } else {
                        r.ties += 1
                    }
                };
                tally(records.entry(a.clone()).or_default(), pa);
                tally(records.entry(b.clone()).or_default(), pb);
                *points.entry((a.clone(), b.clone())).or_default() += pa;
                *points.entry((b.clone(), a.clone())).or_default() += pb;
                *met.entry((a.clone(), b.clone())).or_default() += 1.0;
                *met.entry((b, a)).or_default() += 1.0;
            }
        }
    }
    // The virtual tie of every pair that met.
    for (pair, n) in met.iter_mut() {
        *n += 1.0;
        *points.entry(pair.clone()).or_default() += 0.5;
    }
    let names: Vec<String> = records.keys().cloned().collect();
    let mut strength: BTreeMap<&String, f64> = names.iter().map(|n| (n, 1.0)).collect();
    for _ in 0..ITERATIONS {
        let mut next = BTreeMap::new();
        for i in &names {
            let won: f64 = names
                .iter()
                .filter_map(|j| points.get(&(i.clone(), j.clone())))
                .sum();
            let denominator: f64 = names
                .iter()
                .filter_map(|j| {
                    let n = met.get(&(i.clone(), j.clone()))?;
                    Some(n / (strength[i] + strength[j]))
                })
                .sum();
            next.insert(i, won / denominator);
        }
        // Geometric mean 1: the scale is only defined up to a factor.
        let mean = (next.values().map(|s: &f64| s.ln()).sum::<f64>() / next.len() as f64).exp();
        strength = next.into_iter().map(|(k, v)| (k, v / mean)).collect();
    }
    for (name, record) in records.iter_mut() {
        record.score = Some(1000.0 + 400.0 * strength[name].log10());
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(models: &[&str], winner: Option<&str>) -> ChosenTurn {
        ChosenTurn {
            models: models.iter().map(|m| m.to_string()).collect(),
            winner: winner.map(str::to_owned),
        }
    }

    #[test]
    fn two_models_score_by_their_record_with_the_virtual_tie() {
        let r = records(&[
            turn(&["a", "b"], Some("a")),
            turn(&["a", "b"], Some("a")),
            turn(&["a", "b"], Some("b")),
        ]);
        assert_eq!((r["a"].wins, r["a"].losses, r["a"].ties), (2, 1, 0));
        // With the virtual tie a has 2.5 of 4 points: strengths 5:3.
        let expected = 1000.0 + 200.0 * (5.0f64 / 3.0).log10();
        assert!(
            (r["a"].score.unwrap() - expected).abs() < 1e-6,
            "{:?}",
            r["a"]
        );
        assert!((r["a"].score.unwrap() + r["b"].score.unwrap() - 2000.0).abs() < 1e-6);
    }

    #[test]
    fn ties_and_three_models() {
        let r = records(&[turn(&["a", "b", "c"], Some("c")), turn(&["a", "b"], None)]);
        assert_eq!((r["c"].wins, r["c"].losses), (2, 0));
        assert_eq!((r["a"].ties, r["a"].losses), (1, 1));
        assert!(r["c"].score > r["a"].score);
        assert!((r["a"].score.unwrap() - r["b"].score.unwrap()).abs() < 1e-9);
    }
}
