//! The framework's virtual weights, `d_vocab x d_vocab`: the direct path and, per head, the
//! full OV and QK circuits, and the skip-trigram table the paper reads off them.
//!
//! Each circuit is kept factored, `A [d_vocab, inner] @ B [inner, d_vocab]` with `inner` =
//! `d_head` (or `d_model` for the direct path), as TransformerLens' `FactoredMatrix` keeps it.
//! [`Factored::row_top_k`] streams blocks of rows through a matrix product and keeps the top
//! `k` of each row, so a 48k-token vocabulary never needs its `vocab x vocab` matrix in memory;
//! [`Factored::dense`] and [`top_k_dense`] are the plain reference it is tested against.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::{head_block, matmul, transpose, HeadId, Named};
use crate::params::Params;
use crate::tokenize::show;

/// A `rows x cols` matrix kept as the product `a @ b`.
#[derive(Clone, Debug)]
pub struct Factored {
    /// `[rows, inner]`
    pub a: Vec<f32>,
    /// `[inner, cols]`
    pub b: Vec<f32>,
    /// Rows of the product.
    pub rows: usize,
    /// The shared dimension.
    pub inner: usize,
    /// Columns of the product.
    pub cols: usize,
}

/// The `k` largest entries of every row: `ids` and `values` `[rows, k]`, largest first (ties:
/// smaller column first).
#[derive(Clone, Debug, PartialEq)]
pub struct TopTable {
    /// Entries kept per row.
    pub k: usize,
    /// Column indices: `[rows, k]`
    pub ids: Vec<u32>,
    /// Values: `[rows, k]`
    pub values: Vec<f32>,
}

impl TopTable {
    /// The `(column, value)` pairs of row `r`, largest first.
    pub fn row(&self, r: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let at = r * self.k;
        self.ids[at..at + self.k]
            .iter()
            .copied()
            .zip(self.values[at..at + self.k].iter().copied())
    }

    /// Rows of the table.
    pub fn rows(&self) -> usize {
        self.ids.len() / self.k.max(1)
    }
}

/// Products with more multiply-adds than this go through candle's multithreaded `f32` matrix
/// product; smaller ones through the plain `f64` [`matmul`].
const DENSE_FLOPS: usize = 1 << 24;

/// `a @ b`, `a`: `[n, k]`, `b`: `[k, m]` -> `[n, m]`.
pub fn product(a: &[f32], b: &[f32], n: usize, k: usize, m: usize) -> Result<Vec<f32>> {
    if n * k * m <= DENSE_FLOPS {
        return Ok(matmul(a, b, n, k, m));
    }
    let ta = Tensor::from_slice(a, (n, k), &Device::Cpu)?;
    let tb = Tensor::from_slice(b, (k, m), &Device::Cpu)?;
    Ok(ta.matmul(&tb)?.flatten_all()?.to_vec1::<f32>()?)
}

impl Factored {
    /// The transpose, still factored: `(a b)^T = b^T a^T`.
    pub fn transpose(&self) -> Factored {
        Factored {
            a: transpose(&self.b, self.inner, self.cols),
            b: transpose(&self.a, self.rows, self.inner),
            rows: self.cols,
            inner: self.inner,
            cols: self.rows,
        }
    }

    /// The whole matrix, `[rows, cols]` (the plain reference; only for small vocabularies).
    pub fn dense(&self) -> Vec<f32> {
        matmul(&self.a, &self.b, self.rows, self.inner, self.cols)
    }

    /// Row `r` of the product: `[cols]`.
    pub fn row(&self, r: usize) -> Vec<f32> {
        matmul(
            &self.a[r * self.inner..(r + 1) * self.inner],
            &self.b,
            1,
            self.inner,
            self.cols,
        )
    }

    /// The top `k` of every row, streamed: blocks of rows go through one matrix product each
    /// (`[block, inner] @ [inner, cols]` into one reused buffer, never `[rows, cols]`), and the
    /// rows of a block are scanned on every core. `progress` advances by rows.
    pub fn row_top_k(&self, k: usize, progress: Option<&ProgressBar>) -> Result<TopTable> {
        Ok(self.stream_top_k(k, false, progress)?.0)
    }

    /// [`row_top_k`](Self::row_top_k) of the matrix and of its transpose, in one pass: every
    /// block also updates a running top `k` of each column.
    pub fn row_and_column_top_k(
        &self,
        k: usize,
        progress: Option<&ProgressBar>,
    ) -> Result<(TopTable, TopTable)> {
        let (rows, cols) = self.stream_top_k(k, true, progress)?;
        Ok((rows, cols.expect("columns were asked for")))
    }

    fn stream_top_k(
        &self,
        k: usize,
        with_columns: bool,
        progress: Option<&ProgressBar>,
    ) -> Result<(TopTable, Option<TopTable>)> {
        // Entries per row (at most `cols`) and per column (at most `rows`).
        let (k, kc) = (k.min(self.cols), k.min(self.rows));
        let empty = |n: usize, k: usize| TopTable {
            k,
            ids: vec![u32::MAX; n * k],
            values: vec![f32::NEG_INFINITY; n * k],
        };
        let mut table = empty(self.rows, k);
        let mut columns = with_columns.then(|| empty(self.cols, kc));
        if k == 0 || kc == 0 {
            return Ok((table, columns));
        }
        // About 32 MiB of products per block, at least 64 rows per core (each core's product
        // packs `b` once per block).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let block = ((8 << 20) / self.cols.max(1))
            .clamp(64 * threads, 4096)
            .min(self.rows);
        let mut values = vec![0.0f32; block * self.cols]; // [block, cols]
        for start in (0..self.rows).step_by(block) {
            let n = block.min(self.rows - start);
            let a = &self.a[start * self.inner..(start + n) * self.inner];
            let values = &mut values[..n * self.cols];
            let per = n.div_ceil(threads);
            let ids = &mut table.ids[start * k..(start + n) * k];
            let vals = &mut table.values[start * k..(start + n) * k];
            let (cols, inner, b) = (self.cols, self.inner, &self.b[..]);
            // Every core multiplies and scans its own rows of the block.
            std::thread::scope(|s| {
                for (((out, a), ids), vals) in values
                    .chunks_mut(per * cols)
                    .zip(a.chunks(per * inner))
                    .zip(ids.chunks_mut(per * k))
                    .zip(vals.chunks_mut(per * k))
                {
                    s.spawn(move || {
                        gemm_into(a, b, out, a.len() / inner, inner, cols);
                        for ((row, ids), vals) in out
                            .chunks_exact(cols)
                            .zip(ids.chunks_exact_mut(k))
                            .zip(vals.chunks_exact_mut(k))
                        {
                            top_k_row(row, ids, vals);
                        }
                    });
                }
            });
            let values = &*values;
            std::thread::scope(|s| {
                if let Some(c) = columns.as_mut() {
                    // Each thread owns a range of columns and offers them every row of the
                    // block, in row order (ties keep the smaller row).
                    let per_col = cols.div_ceil(threads);
                    for (t, (ids, vals)) in c
                        .ids
                        .chunks_mut(per_col * kc)
                        .zip(c.values.chunks_mut(per_col * kc))
                        .enumerate()
                    {
                        s.spawn(move || {
                            let first = t * per_col;
                            for (r, row) in values.chunks_exact(cols).enumerate() {
                                let row = &row[first..first + ids.len() / kc];
                                for (j, &v) in row.iter().enumerate() {
                                    if v > vals[j * kc + kc - 1] {
                                        offer(
                                            &mut ids[j * kc..(j + 1) * kc],
                                            &mut vals[j * kc..(j + 1) * kc],
                                            (start + r) as u32,
                                            v,
                                        );
                                    }
                                }
                            }
                        });
                    }
                }
            });
            if let Some(p) = progress {
                p.inc(n as u64);
            }
        }
        Ok((table, columns))
    }
}

/// `out = a @ b` with the `gemm` crate (SIMD chosen at run time, one thread: the callers run
/// one product per block and scan on every core).
///
/// `a`: `[n, k]`, `b`: `[k, m]`, `out`: `[n, m]`, all row-major.
pub fn gemm_into(a: &[f32], b: &[f32], out: &mut [f32], n: usize, k: usize, m: usize) {
    assert!(
        a.len() == n * k && b.len() == k * m && out.len() == n * m,
        "gemm_into: shapes"
    );
    // SAFETY: the three slices hold exactly `n*k`, `k*m` and `n*m` elements (asserted above),
    // the strides describe row-major storage inside them, `out` is borrowed mutably and so
    // aliases neither input, and `read_dst = false` means `out` is only written.
    unsafe {
        gemm::gemm(
            n,
            m,
            k,
            out.as_mut_ptr(),
            1,
            m as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            m as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Inserts `(id, v)` into a full, descending top-k (`ids`, `vals`: `[k]`) if `v` beats its
/// smallest entry; the smallest drops out.
fn offer(ids: &mut [u32], vals: &mut [f32], id: u32, v: f32) {
    let k = vals.len();
    if v.is_nan() || v <= vals[k - 1] {
        return;
    }
    let mut at = k - 1;
    while at > 0 && v > vals[at - 1] {
        vals[at] = vals[at - 1];
        ids[at] = ids[at - 1];
        at -= 1;
    }
    vals[at] = v;
    ids[at] = id;
}

/// The `ids.len()` largest entries of `row`, largest first, ties to the smaller index: one
/// pass with a small sorted buffer.
///
/// `row`: `[cols]`, `ids`, `vals`: `[k]`
pub fn top_k_row(row: &[f32], ids: &mut [u32], vals: &mut [f32]) {
    if ids.is_empty() {
        return;
    }
    vals.fill(f32::NEG_INFINITY);
    ids.fill(u32::MAX);
    let k = vals.len();
    for (j, &v) in row.iter().enumerate() {
        if v > vals[k - 1] {
            offer(ids, vals, j as u32, v);
        }
    }
}

/// The plain reference of [`Factored::row_top_k`]: sort each row of a dense matrix.
///
/// `dense`: `[rows, cols]`
pub fn top_k_dense(dense: &[f32], rows: usize, cols: usize, k: usize) -> TopTable {
    let k = k.min(cols);
    let mut table = TopTable {
        k,
        ids: Vec::with_capacity(rows * k),
        values: Vec::with_capacity(rows * k),
    };
    for row in dense.chunks_exact(cols).take(rows) {
        let mut order: Vec<u32> = (0..cols as u32).collect();
        order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
        for &j in &order[..k] {
            table.ids.push(j);
            table.values.push(row[j as usize]);
        }
    }
    table
}

/// The direct path `W_E W_U` (bigram statistics): row = current token, column = next token.
/// `[d_vocab, d_model] @ [d_model, d_vocab]`.
pub fn direct_path(p: &Params) -> Factored {
    let c = &p.config;
    Factored {
        a: p.w_e.clone(),
        b: p.w_u.clone(),
        rows: c.d_vocab,
        inner: c.d_model,
        cols: c.d_vocab,
    }
}

/// The full OV circuit of a head, `W_E W_V W_O W_U`: row = source (attended-to) token,
/// column = out token. Factored as `(W_E W_V) [d_vocab, d_head] @ (W_O W_U) [d_head, d_vocab]`.
pub fn full_ov(p: &Params, id: HeadId) -> Result<Factored> {
    let c = &p.config;
    let (v, m, d) = (c.d_vocab, c.d_model, c.d_head);
    let layer = &p.layers[id.layer];
    let a = product(&p.w_e, head_block(&layer.w_v, id.head, m, d), v, m, d)?;
    let b = product(head_block(&layer.w_o, id.head, d, m), &p.w_u, d, m, v)?;
    Ok(Factored {
        a,
        b,
        rows: v,
        inner: d,
        cols: v,
    })
}

/// The full QK circuit of a head, `W_E W_Q W_K^T W_E^T`: row = destination (query) token,
/// column = source (key) token; attention scores before the `1/sqrt(d_head)` scale.
/// Factored as `(W_E W_Q) [d_vocab, d_head] @ (W_E W_K)^T [d_head, d_vocab]`.
pub fn full_qk(p: &Params, id: HeadId) -> Result<Factored> {
    let c = &p.config;
    let (v, m, d) = (c.d_vocab, c.d_model, c.d_head);
    let layer = &p.layers[id.layer];
    let a = product(&p.w_e, head_block(&layer.w_q, id.head, m, d), v, m, d)?;
    let ek = product(&p.w_e, head_block(&layer.w_k, id.head, m, d), v, m, d)?;
    Ok(Factored {
        a,
        b: transpose(&ek, v, d),
        rows: v,
        inner: d,
        cols: v,
    })
}

/// The top-k tables of one head.
pub struct HeadTables {
    /// The head.
    pub head: HeadId,
    /// Per source token, the out tokens its OV row boosts most: `[d_vocab, k]`.
    pub ov: TopTable,
    /// Per destination token, the source tokens its QK row scores highest: `[d_vocab, k]`.
    pub qk: TopTable,
    /// Per source token, the destination tokens that attend to it most (its QK column):
    /// `[d_vocab, k]`.
    pub qk_by_source: TopTable,
}

/// A progress bar on stderr for `rows` rows (hidden when stderr is not a terminal).
pub fn progress(rows: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(rows);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<28} [{bar:32}] {pos}/{len} rows, {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The OV, QK and QK-by-source top-`k` tables of one head, streamed: two passes over the
/// vocabulary (OV rows; QK rows and columns together), each `d_vocab x d_vocab x d_head`
/// multiply-adds.
pub fn head_tables(p: &Params, id: HeadId, k: usize, show_progress: bool) -> Result<HeadTables> {
    let v = p.config.d_vocab as u64;
    let bar = show_progress.then(|| progress(2 * v, &format!("head {id}: OV, QK")));
    let ov = full_ov(p, id)?.row_top_k(k, bar.as_ref())?;
    let (qk, qk_by_source) = full_qk(p, id)?.row_and_column_top_k(k, bar.as_ref())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(HeadTables {
        head: id,
        ov,
        qk,
        qk_by_source,
    })
}

/// Example skip-trigrams of `source`: `(destination, out)` pairs, the `i`-th top destination
/// with the `i`-th top out token, as the paper's table lists them ("perfect ... are perfect").
pub fn skip_trigrams(t: &HeadTables, source: u32, n: usize) -> Vec<(u32, u32)> {
    t.qk_by_source
        .row(source as usize)
        .zip(t.ov.row(source as usize))
        .take(n)
        .map(|((d, _), (o, _))| (d, o))
        .collect()
}

/// The rows to print: every row when `rows == 0` or the table is small, otherwise the `rows`
/// rows with the largest top entry, largest first.
pub fn rows_to_show(t: &TopTable, rows: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..t.rows() as u32).collect();
    if rows == 0 || rows >= order.len() {
        return order;
    }
    let top = |r: u32| t.values.get(r as usize * t.k).copied().unwrap_or(f32::MIN);
    order.sort_by(|&a, &b| top(b).total_cmp(&top(a)).then(a.cmp(&b)));
    order.truncate(rows);
    order
}

/// Options of `tinylens circuits`.
pub struct CircuitsOptions {
    /// Only this head (default: every head).
    pub head: Option<HeadId>,
    /// Entries per row of each table.
    pub top: usize,
    /// Rows printed per table (0: all).
    pub rows: usize,
    /// Also compute the direct path (a `d_vocab x d_vocab x d_model` product).
    pub direct: bool,
    /// Progress bars on stderr.
    pub progress: bool,
}

/// Everything `circuits` computed.
pub struct CircuitsReport {
    /// Top next tokens of every current token, when asked for.
    pub direct: Option<TopTable>,
    /// One set of tables per head analysed.
    pub heads: Vec<HeadTables>,
}

/// Computes the tables of `tinylens circuits`.
pub fn circuits(p: &Params, opts: &CircuitsOptions) -> Result<CircuitsReport> {
    let direct = if opts.direct {
        let bar = opts
            .progress
            .then(|| progress(p.config.d_vocab as u64, "direct path W_E W_U"));
        let t = direct_path(p).row_top_k(opts.top, bar.as_ref())?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Some(t)
    } else {
        None
    };
    let ids = match opts.head {
        Some(id) => vec![id],
        None => HeadId::all(&p.config),
    };
    let heads = ids
        .into_iter()
        .map(|id| head_tables(p, id, opts.top, opts.progress))
        .collect::<Result<Vec<_>>>()?;
    Ok(CircuitsReport { direct, heads })
}

/// A value with three significant digits, in scientific notation when small.
pub fn number(value: f32) -> String {
    if value == 0.0 || (0.01..1e4).contains(&value.abs()) {
        format!("{value:.2}")
    } else {
        format!("{value:.2e}")
    }
}

fn cell(vocab: Option<&[String]>, id: u32, value: f32) -> String {
    format!("{} {}", show(vocab, id), number(value))
}

fn list(vocab: Option<&[String]>, row: impl Iterator<Item = (u32, f32)>) -> String {
    row.map(|(id, v)| cell(vocab, id, v))
        .collect::<Vec<_>>()
        .join("  ")
}

/// Prints the tables of a report.
pub fn print_circuits(p: &Params, r: &CircuitsReport, rows: usize) {
    let vocab = p.vocab.as_deref();
    let v = p.config.d_vocab;
    let shown = |t: &TopTable| {
        let r = rows_to_show(t, rows);
        let which = if r.len() == v {
            format!("all {v} rows")
        } else {
            format!("{} of {v} rows, largest entries first", r.len())
        };
        (r, which)
    };
    if let Some(t) = &r.direct {
        let (order, which) = shown(t);
        println!("direct path W_E W_U (bigrams): row = current token, top next tokens ({which})");
        for s in order {
            println!(
                "  {:>8} | {}",
                show(vocab, s),
                list(vocab, t.row(s as usize))
            );
        }
        println!();
    }
    for h in &r.heads {
        println!("head {}", h.head);
        let (order, which) = shown(&h.ov);
        println!("  OV circuit W_E W_V W_O W_U: row = source token, top out tokens ({which})");
        for &s in &order {
            println!(
                "  {:>8} | {}",
                show(vocab, s),
                list(vocab, h.ov.row(s as usize))
            );
        }
        let (qorder, which) = shown(&h.qk);
        println!(
            "  QK circuit W_E W_Q W_K^T W_E^T: row = destination token, top source tokens ({which})"
        );
        for d in qorder {
            println!(
                "  {:>8} | {}",
                show(vocab, d),
                list(vocab, h.qk.row(d as usize))
            );
        }
        println!("  skip-trigrams \"source ... destination out\" (rows as in the OV table):");
        println!(
            "  {:>8} | {:<30} | {:<30} | examples",
            "source", "top destination tokens", "top out tokens"
        );
        for &s in &order {
            let names = |t: &TopTable| {
                t.row(s as usize)
                    .take(4)
                    .map(|(i, _)| show(vocab, i))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let examples = skip_trigrams(h, s, 2)
                .into_iter()
                .map(|(d, o)| {
                    format!(
                        "{} ... {} {}",
                        show(vocab, s),
                        show(vocab, d),
                        show(vocab, o)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "  {:>8} | {:<30} | {:<30} | {examples}",
                show(vocab, s),
                names(&h.qk_by_source),
                names(&h.ov)
            );
        }
        println!();
    }
}

/// Largest dense `--out` of `circuits`, in bytes.
pub const DENSE_OUT_LIMIT: usize = 256 << 20;

/// The tensors of `circuits --out`: the dense circuits `direct_path` `[d_vocab, d_vocab]`,
/// `full_OV`, `full_QK` `[n_layers, n_heads, d_vocab, d_vocab]` (refused past
/// [`DENSE_OUT_LIMIT`]), and the top-k tables of the report (`<head>.ov_top.ids` ...).
pub fn circuits_tensors(p: &Params, r: &CircuitsReport) -> Result<Vec<Named>> {
    let c = &p.config;
    let (l, h, v) = (c.n_layers, c.n_heads, c.d_vocab);
    let bytes = (2 * l * h + 1) * v * v * 4;
    if bytes > DENSE_OUT_LIMIT {
        bail!(
            "the model is too large for dense --out: direct_path, full_OV and full_QK \
             ([{l}, {h}, {v}, {v}] f32) would take {:.1} GiB, the limit is {} MiB; \
             the tables need no dense matrix: run without --out",
            bytes as f64 / (1u64 << 30) as f64,
            DENSE_OUT_LIMIT >> 20
        );
    }
    let mut ov = Vec::with_capacity(l * h * v * v);
    let mut qk = Vec::with_capacity(l * h * v * v);
    for id in HeadId::all(c) {
        ov.extend(full_ov(p, id)?.dense());
        qk.extend(full_qk(p, id)?.dense());
    }
    let mut out = vec![
        Named::new("direct_path", vec![v, v], direct_path(p).dense()),
        Named::new("full_OV", vec![l, h, v, v], ov),
        Named::new("full_QK", vec![l, h, v, v], qk),
    ];
    let ids = |t: &TopTable| t.ids.iter().map(|&i| i as f32).collect::<Vec<f32>>();
    if let Some(t) = &r.direct {
        out.push(Named::new("direct_path.top_ids", vec![v, t.k], ids(t)));
        out.push(Named::new(
            "direct_path.top_values",
            vec![v, t.k],
            t.values.clone(),
        ));
    }
    for t in &r.heads {
        let name = |what: &str| format!("blocks.{}.attn.{}.{what}", t.head.layer, t.head.head);
        for (what, table) in [
            ("ov_top", &t.ov),
            ("qk_top", &t.qk),
            ("qk_top_by_source", &t.qk_by_source),
        ] {
            out.push(Named::new(
                name(&format!("{what}_ids")),
                vec![v, table.k],
                ids(table),
            ));
            out.push(Named::new(
                name(&format!("{what}_values")),
                vec![v, table.k],
                table.values.clone(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::SplitMix;

    fn random(rows: usize, inner: usize, cols: usize, seed: u64) -> Factored {
        let mut rng = SplitMix(seed);
        let mut r = |n: usize| (0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
        Factored {
            a: r(rows * inner),
            b: r(inner * cols),
            rows,
            inner,
            cols,
        }
    }

    #[test]
    fn streamed_top_k_equals_the_dense_reference() {
        for (rows, inner, cols, k) in [
            (37, 5, 53, 4),
            (300, 16, 7, 7),
            (1, 3, 9, 20),
            (129, 8, 130, 1),
        ] {
            let f = random(rows, inner, cols, rows as u64);
            let dense = f.dense();
            let expected_rows = top_k_dense(&dense, rows, cols, k);
            let expected_cols = top_k_dense(&transpose(&dense, rows, cols), cols, rows, k);
            let (got_rows, got_cols) = f.row_and_column_top_k(k, None).unwrap();
            assert_eq!(got_rows.ids, expected_rows.ids, "{rows}x{cols} rows");
            assert_eq!(got_cols.ids, expected_cols.ids, "{rows}x{cols} columns");
            for (a, b) in got_rows.values.iter().zip(&expected_rows.values) {
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
            }
            assert_eq!(f.row_top_k(k, None).unwrap().ids, expected_rows.ids);
        }
    }

    #[test]
    fn top_k_row_keeps_the_smaller_index_on_ties_and_skips_nan() {
        let (mut ids, mut vals) = ([0u32; 3], [0.0f32; 3]);
        top_k_row(&[1.0, f32::NAN, 3.0, 3.0, 2.0], &mut ids, &mut vals);
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(vals, [3.0, 3.0, 2.0]);
    }
}
