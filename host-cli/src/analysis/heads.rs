//! What kind of head each head is: previous-token, duplicate-token and induction scores on
//! repeated random sequences, the copying score of its OV circuit, and the names these earn.
//!
//! Attention scores come in two forms, from the same attention patterns:
//! - "mul", TransformerLens' `head_detector.detect_head` (its default error measure):
//!   `sum(pattern * detection) / sum(pattern)` per sequence, averaged over sequences
//!   ([`detector_score`] on the dense detection patterns below is the plain reference);
//! - "diagonal": the mean attention on the targets over the positions that have any (for
//!   previous-token heads `mean_q A[q, q-1]`; for induction heads the attention from `q` to the
//!   token after the earlier occurrence of the current token, on a repeated sequence of period
//!   `n` the diagonal `A[q, q-n+1]`).
//!
//! Both are accumulated by the kernel's [`tinylens::stats::HeadStats`] while it decodes, the
//! same code a firmware runs.

use anyhow::Result;
use tinylens::stats::{HeadCounters, HeadStats};
use tinylens::{Decoder, Model};

use super::circuits::product;
use super::composition::{all_composition_scores, random_baseline, Mode};
use super::{head_block, HeadId, Named, SplitMix};
use crate::params::Params;

/// TransformerLens' previous-token detection pattern: `D[q, q-1] = 1`. `[seq, seq]`
pub fn previous_token_pattern(seq: usize) -> Vec<f32> {
    let mut d = vec![0.0; seq * seq];
    for q in 1..seq {
        d[q * seq + q - 1] = 1.0;
    }
    d
}

/// TransformerLens' duplicate-token detection pattern: `D[q, j] = 1` for `j < q` with
/// `t_j = t_q`. `[seq, seq]`
pub fn duplicate_token_pattern(tokens: &[u32]) -> Vec<f32> {
    let seq = tokens.len();
    let mut d = vec![0.0; seq * seq];
    for q in 0..seq {
        for j in 0..q {
            if tokens[j] == tokens[q] {
                d[q * seq + j] = 1.0;
            }
        }
    }
    d
}

/// TransformerLens' induction detection pattern: the duplicate pattern shifted one to the
/// right, `D[q, j+1] = 1` for `j < q` with `t_j = t_q`. `[seq, seq]`
pub fn induction_pattern(tokens: &[u32]) -> Vec<f32> {
    let seq = tokens.len();
    let dup = duplicate_token_pattern(tokens);
    let mut d = vec![0.0; seq * seq];
    for q in 0..seq {
        for k in 1..=q {
            d[q * seq + k] = dup[q * seq + k - 1];
        }
    }
    d
}

/// `detect_head(..., error_measure="mul")` of one head on one sequence:
/// `sum(pattern * detection) / sum(pattern)`. `pattern`, `detection`: `[seq, seq]`
pub fn detector_score(pattern: &[f32], detection: &[f32]) -> f32 {
    let hit: f64 = pattern
        .iter()
        .zip(detection)
        .map(|(&a, &d)| a as f64 * d as f64)
        .sum();
    let mass: f64 = pattern.iter().map(|&a| a as f64).sum();
    (hit / mass) as f32
}

/// `n` sequences of `half` random tokens repeated twice (`2 * half` tokens each), seeded.
pub fn repeated_sequences(n: usize, half: usize, d_vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| {
            let first: Vec<u32> = (0..half).map(|_| rng.below(d_vocab) as u32).collect();
            first.iter().chain(&first).copied().collect()
        })
        .collect()
}

/// Attention scores of every head, averaged over sequences: `[n_layers * n_heads]` each,
/// index `layer * n_heads + head`.
#[derive(Clone, Debug, Default)]
pub struct AttentionScores {
    /// Previous-token, "mul".
    pub prev: Vec<f32>,
    /// Duplicate-token, "mul".
    pub duplicate: Vec<f32>,
    /// Induction, "mul".
    pub induction: Vec<f32>,
    /// Previous-token, diagonal.
    pub prev_diag: Vec<f32>,
    /// Duplicate-token, diagonal.
    pub duplicate_diag: Vec<f32>,
    /// Induction, diagonal.
    pub induction_diag: Vec<f32>,
}

/// Heads and context the host's [`HeadStats`] holds.
type HostStats = HeadStats<1024, 8192>;

/// Runs the kernel over each sequence and reads every head's statistics with
/// [`HeadStats`]; scores are averaged over sequences, as `detect_head` averages a list.
pub fn attention_scores(model: &Model<'_>, sequences: &[Vec<u32>]) -> Result<AttentionScores> {
    let cfg = *model.config();
    let n = cfg.n_layers * cfg.n_heads;
    let mut arena = vec![0.0f32; cfg.state_len()];
    let mut decoder = Decoder::new(model, &mut arena)?;
    let mut stats = Box::new(HostStats::new());
    let mut s = AttentionScores {
        prev: vec![0.0; n],
        duplicate: vec![0.0; n],
        induction: vec![0.0; n],
        prev_diag: vec![0.0; n],
        duplicate_diag: vec![0.0; n],
        induction_diag: vec![0.0; n],
    };
    for seq in sequences {
        decoder.reset();
        stats.reset();
        for &t in seq {
            decoder.step(t)?;
            stats.observe(&decoder, t)?;
        }
        for id in HeadId::all(&cfg) {
            let c: &HeadCounters = stats.head(id.layer, id.head)?;
            let i = id.layer * cfg.n_heads + id.head;
            s.prev[i] += c.prev.mul(c);
            s.duplicate[i] += c.duplicate.mul(c);
            s.induction[i] += c.induction.mul(c);
            s.prev_diag[i] += c.prev.diagonal();
            s.duplicate_diag[i] += c.duplicate.diagonal();
            s.induction_diag[i] += c.induction.diagonal();
        }
    }
    let k = sequences.len().max(1) as f32;
    for v in [
        &mut s.prev,
        &mut s.duplicate,
        &mut s.induction,
        &mut s.prev_diag,
        &mut s.duplicate_diag,
        &mut s.induction_diag,
    ] {
        v.iter_mut().for_each(|x| *x /= k);
    }
    Ok(s)
}

/// The eigenvalues of the full OV circuit `W_E W_V W_O W_U`, computed as TransformerLens'
/// `FactoredMatrix.eigenvalues` does, on the `[d_head, d_head]` matrix
/// `BA = (W_O W_U)(W_E W_V)` (same nonzero eigenvalues as the `d_vocab x d_vocab` product).
pub fn full_ov_eigenvalues(p: &Params, id: HeadId) -> Result<Vec<nalgebra::Complex<f64>>> {
    let c = &p.config;
    let (v, m, d) = (c.d_vocab, c.d_model, c.d_head);
    let l = &p.layers[id.layer];
    let ev = product(&p.w_e, head_block(&l.w_v, id.head, m, d), v, m, d)?; // [v, d]
    let ou = product(head_block(&l.w_o, id.head, d, m), &p.w_u, d, m, v)?; // [d, v]
    let ba = product(&ou, &ev, d, v, d)?; // [d, d]
    let matrix = nalgebra::DMatrix::from_row_iterator(d, d, ba.iter().map(|&x| x as f64));
    Ok(matrix.complex_eigenvalues().iter().copied().collect())
}

/// The copying score of a head: `sum(lambda) / sum(|lambda|)` over the eigenvalues of its full
/// OV circuit (real part). Near 1: attending to a token raises that token's logit.
pub fn copying_score(p: &Params, id: HeadId) -> Result<f32> {
    let eig = full_ov_eigenvalues(p, id)?;
    let sum: f64 = eig.iter().map(|z| z.re).sum();
    let abs: f64 = eig.iter().map(|z| z.norm()).sum();
    Ok(if abs > 0.0 { (sum / abs) as f32 } else { 0.0 })
}

/// Thresholds a head's scores must reach to be named.
pub mod threshold {
    /// Diagonal previous-token score of a previous-token head.
    pub const PREV: f32 = 0.4;
    /// Diagonal duplicate-token score of a duplicate-token head.
    pub const DUPLICATE: f32 = 0.4;
    /// Diagonal induction score of an induction head.
    pub const INDUCTION: f32 = 0.4;
    /// Copying score of a copying head.
    pub const COPYING: f32 = 0.7;
}

/// Everything `tinylens heads` reports.
pub struct HeadsReport {
    /// The sequences the attention scores come from.
    pub sequences: Vec<Vec<u32>>,
    /// Attention scores.
    pub scores: AttentionScores,
    /// Copying scores: `[n_layers * n_heads]`
    pub copying: Vec<f32>,
    /// `composition_scores.Q/.K/.V`: `[n_layers, n_heads, n_layers, n_heads]` each.
    pub composition: Vec<(Mode, Vec<f32>)>,
    /// The random-matrix baseline of the composition scores.
    pub baseline: f64,
}

/// Computes the report of `tinylens heads` on `sequences`.
pub fn heads(p: &Params, model: &Model<'_>, sequences: Vec<Vec<u32>>) -> Result<HeadsReport> {
    let scores = attention_scores(model, &sequences)?;
    let copying = HeadId::all(&p.config)
        .into_iter()
        .map(|id| copying_score(p, id))
        .collect::<Result<Vec<_>>>()?;
    let composition = Mode::ALL
        .iter()
        .map(|&m| (m, all_composition_scores(p, m)))
        .collect();
    let baseline = random_baseline(p.config.d_model, p.config.d_head, 64, 0);
    Ok(HeadsReport {
        sequences,
        scores,
        copying,
        composition,
        baseline,
    })
}

/// The names a head earns, with the score and threshold behind each.
pub fn names(r: &HeadsReport, i: usize) -> Vec<String> {
    let s = &r.scores;
    let mut out = Vec::new();
    let mut name = |score: f32, t: f32, what: &str, label: &str| {
        if score >= t {
            out.push(format!("{label} ({what} {score:.2} >= {t:.2})"));
        }
    };
    name(
        s.induction_diag[i],
        threshold::INDUCTION,
        "induction",
        "induction head",
    );
    name(
        s.prev_diag[i],
        threshold::PREV,
        "previous-token",
        "previous-token head",
    );
    name(
        s.duplicate_diag[i],
        threshold::DUPLICATE,
        "duplicate",
        "duplicate-token head",
    );
    name(r.copying[i], threshold::COPYING, "copying", "copying");
    out
}

/// Prints the report.
pub fn print_heads(p: &Params, r: &HeadsReport) {
    let c = &p.config;
    let seq = r.sequences.first().map_or(0, Vec::len);
    println!(
        "attention scores on {} repeated random sequences of {} tokens (a random half, twice);",
        r.sequences.len(),
        seq
    );
    println!("\"mul\" = TransformerLens detect_head, \"diag\" = mean attention on the target");
    println!(
        "  {:>4} | {:>12} | {:>12} | {:>12} | {:>7} | named",
        "head", "prev mul/diag", "dup mul/diag", "ind mul/diag", "copying"
    );
    let s = &r.scores;
    for id in HeadId::all(c) {
        let i = id.layer * c.n_heads + id.head;
        println!(
            "  {:>4} | {:>5.3} {:>6.3} | {:>5.3} {:>6.3} | {:>5.3} {:>6.3} | {:>7.3} | {}",
            id.to_string(),
            s.prev[i],
            s.prev_diag[i],
            s.duplicate[i],
            s.duplicate_diag[i],
            s.induction[i],
            s.induction_diag[i],
            r.copying[i],
            names(r, i).join(", ")
        );
    }
    println!(
        "thresholds (diagonal scores): induction >= {:.2}, previous-token >= {:.2}, duplicate >= \
         {:.2}; copying >= {:.2}",
        threshold::INDUCTION,
        threshold::PREV,
        threshold::DUPLICATE,
        threshold::COPYING
    );
    let found: Vec<String> = HeadId::all(c)
        .into_iter()
        .enumerate()
        .flat_map(|(i, id)| {
            names(r, i)
                .into_iter()
                .filter(|n| !n.starts_with("copying"))
                .map(move |n| format!("{id} {n}"))
        })
        .collect();
    if found.is_empty() {
        println!("no head passes the attention thresholds");
    } else {
        for f in found {
            println!("{f}");
        }
    }
    if c.n_layers < 2 {
        println!("\ncomposition: one layer, no head composes with another");
        return;
    }
    println!(
        "\ncomposition scores ||A B||_F / (||A||_F ||B||_F), earlier head (row) -> later head \
         (column); random baseline {:.3}",
        r.baseline
    );
    let (l, h) = (c.n_layers, c.n_heads);
    for (mode, scores) in &r.composition {
        println!("  {}-composition", mode.name());
        let later: Vec<HeadId> = HeadId::all(c).into_iter().filter(|b| b.layer > 0).collect();
        let header: Vec<String> = later
            .iter()
            .map(|b| format!("{:>6}", b.to_string()))
            .collect();
        println!("  {:>6} {}", "", header.join(""));
        for a in HeadId::all(c).into_iter().filter(|a| a.layer + 1 < l) {
            let row: Vec<String> = later
                .iter()
                .map(|b| {
                    if a.layer < b.layer {
                        let v = scores[(a.layer * h + a.head) * l * h + b.layer * h + b.head];
                        format!("{v:>6.3}")
                    } else {
                        format!("{:>6}", "-")
                    }
                })
                .collect();
            println!("  {:>6} {}", a.to_string(), row.join(""));
        }
    }
}

/// The tensors of `heads --out`.
pub fn heads_tensors(p: &Params, r: &HeadsReport) -> Vec<Named> {
    let (l, h) = (p.config.n_layers, p.config.n_heads);
    let s = &r.scores;
    let mut out = vec![
        Named::new("prev_token_score", vec![l, h], s.prev.clone()),
        Named::new("duplicate_token_score", vec![l, h], s.duplicate.clone()),
        Named::new("induction_score", vec![l, h], s.induction.clone()),
        Named::new("prev_token_score.diag", vec![l, h], s.prev_diag.clone()),
        Named::new(
            "duplicate_token_score.diag",
            vec![l, h],
            s.duplicate_diag.clone(),
        ),
        Named::new("induction_score.diag", vec![l, h], s.induction_diag.clone()),
        Named::new("copying_score", vec![l, h], r.copying.clone()),
        Named::new(
            "composition_scores.baseline",
            vec![1],
            vec![r.baseline as f32],
        ),
    ];
    for (mode, scores) in &r.composition {
        out.push(Named::new(
            format!("composition_scores.{}", mode.name()),
            vec![l, h, l, h],
            scores.clone(),
        ));
    }
    let seq = r.sequences.first().map_or(0, Vec::len);
    let tokens: Vec<f32> = r.sequences.iter().flatten().map(|&t| t as f32).collect();
    out.push(Named::new(
        "head_tokens",
        vec![r.sequences.len(), seq],
        tokens,
    ));
    out
}
