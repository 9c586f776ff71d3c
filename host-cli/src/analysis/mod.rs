//! Circuit analysis: the tools of "A Mathematical Framework for Transformer Circuits" as
//! functions on a [`Params`](crate::params::Params), each checked against TransformerLens.
//!
//! | the framework | TransformerLens | here |
//! |---|---|---|
//! | direct path `W_U W_E` (bigrams) | `model.W_E @ model.W_U` | [`circuits::direct_path`] |
//! | OV circuit `W_U W_O W_V W_E` | `model.W_E @ model.OV @ model.W_U` | [`circuits::full_ov`] |
//! | QK circuit `W_E^T W_Q^T W_K W_E` | `model.W_E @ model.QK @ model.W_E.T` | [`circuits::full_qk`] |
//! | skip-trigrams "source ... destination out" | - | [`circuits::skip_trigrams`] |
//! | copying score `sum(lambda) / sum(abs(lambda))` | `full_OV.eigenvalues` | [`heads::copying_score`] |
//! | Q-, K-, V-composition `norm(A B) / (norm(A) norm(B))` | `model.all_composition_scores` | [`composition::composition_score`] |
//! | previous-token, duplicate, induction heads | `head_detector.detect_head` | [`heads::detector_score`] |
//! | term importance by ablation | `run_with_hooks` on `hook_z` | [`ablate`] |
//! | activation patching, normalized | `patching.get_act_patch_*` | [`patching::patching`] |
//! | path patching, sender -> receiver's q, k, v | hooks on `hook_z`, `hook_q/k/v` | [`patching::Patch::Path`] |
//!
//! Orientation is TransformerLens': row vectors multiply weights on the right, so in the OV
//! circuit the row is the source (attended-to) token and the column the out token; in the QK
//! circuit the row is the destination (query) token and the column the source (key) token.
//! Circuits use the weights as stored, like TransformerLens (LayerNorm is not folded in;
//! a checkpoint saved with `fold_ln=True` gives the folded circuits).

pub mod ablate;
pub mod circuits;
pub mod composition;
pub mod heads;
pub mod patching;
pub mod plot;

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use tinylens::Config;

/// A head, `layer.head` as TransformerLens prints `L{layer}H{head}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadId {
    /// Layer.
    pub layer: usize,
    /// Head within the layer.
    pub head: usize,
}

impl std::fmt::Display for HeadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer, self.head)
    }
}

impl HeadId {
    /// Parses `L.H` and checks it against `cfg`.
    pub fn parse(text: &str, cfg: &Config) -> Result<HeadId> {
        let (l, h) = text
            .split_once('.')
            .ok_or_else(|| anyhow!("--head {text:?} is not of the form LAYER.HEAD (e.g. 1.0)"))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| anyhow!("--head {text:?} is not of the form LAYER.HEAD (e.g. 1.0)"))
        };
        let id = HeadId {
            layer: parse(l)?,
            head: parse(h)?,
        };
        if id.layer >= cfg.n_layers {
            bail!(
                "--head {text}: layer {} is out of range: the model has {} layer{} (0..{})",
                id.layer,
                cfg.n_layers,
                if cfg.n_layers == 1 { "" } else { "s" },
                cfg.n_layers - 1
            );
        }
        if id.head >= cfg.n_heads {
            bail!(
                "--head {text}: head {} is out of range: the model has {} heads per layer (0..{})",
                id.head,
                cfg.n_heads,
                cfg.n_heads - 1
            );
        }
        Ok(id)
    }

    /// Every head of `cfg`, layer by layer.
    pub fn all(cfg: &Config) -> Vec<HeadId> {
        (0..cfg.n_layers)
            .flat_map(|layer| (0..cfg.n_heads).map(move |head| HeadId { layer, head }))
            .collect()
    }
}

/// A named f32 tensor for `--out`.
pub struct Named {
    /// TransformerLens-style name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl Named {
    /// A tensor, checking that `data` fills `shape`.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Named {
        let name = name.into();
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "{name}: data does not fill its shape"
        );
        Named { name, shape, data }
    }
}

/// Writes named tensors (f32) to a safetensors file.
pub fn write_tensors(path: &Path, tensors: &[Named]) -> Result<()> {
    let views: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    crate::files::write_f32_safetensors(path, &views)
}

/// `a @ b` in f64 accumulation, the plain reference product.
///
/// `a`: `[n, k]`, `b`: `[k, m]`, returns `[n, m]`
pub fn matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
    let mut out = vec![0.0f64; n * m];
    for i in 0..n {
        let row = &mut out[i * m..(i + 1) * m];
        for (p, &aip) in a[i * k..(i + 1) * k].iter().enumerate() {
            let aip = aip as f64;
            for (o, &bpj) in row.iter_mut().zip(&b[p * m..(p + 1) * m]) {
                *o += aip * bpj as f64;
            }
        }
    }
    out.into_iter().map(|x| x as f32).collect()
}

/// The transpose of `a`: `[n, m]` -> `[m, n]`.
pub fn transpose(a: &[f32], n: usize, m: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            out[j * n + i] = a[i * m + j];
        }
    }
    out
}

/// The `[d_model, d_head]` block of head `h` in a `[n_heads, d_model, d_head]` tensor (or the
/// `[d_head, d_model]` block of `W_O`).
pub fn head_block(w: &[f32], h: usize, rows: usize, cols: usize) -> &[f32] {
    &w[h * rows * cols..(h + 1) * rows * cols]
}

/// A 64-bit splitmix generator for reproducible random inputs (sequences, baselines).
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
