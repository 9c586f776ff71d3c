//! What the benchmarks in `benches/` run on: two model sizes, deterministic random weights,
//! the prompt every benchmark decodes, and the two computations they compare (the kernel's
//! decoder and the candle reference in `f32`).
//!
//! Every benchmark input lives here rather than in the bench target so that the tests below
//! can check that the kernel and candle compute the same logits for exactly the inputs that
//! are timed.

use candle_core::Tensor;
use tinylens::writer::AlignedBytes;
use tinylens::{Config, Decoder, Model, Norm, PosEmbed};
use tinylens_cli::blobio::blob_from_params;
use tinylens_cli::params::{LayerParams, LnParams, Params};
use tinylens_cli::reference::Reference;

/// The demo size: 2 layers, 4 heads of 16, `d_model` 64, 128 tokens, 64 positions.
pub const DEMO: Config = Config {
    n_layers: 2,
    n_heads: 4,
    d_model: 64,
    d_head: 16,
    d_vocab: 128,
    n_ctx: 64,
    norm: Norm::LayerNorm { eps: 1e-5 },
    pos: PosEmbed::Standard,
};

/// The large size: 2 layers, 8 heads of 32, `d_model` 256, 512 tokens, 256 positions.
pub const LARGE: Config = Config {
    n_layers: 2,
    n_heads: 8,
    d_model: 256,
    d_head: 32,
    d_vocab: 512,
    n_ctx: 256,
    norm: Norm::LayerNorm { eps: 1e-5 },
    pos: PosEmbed::Standard,
};

/// Every benchmarked size with its name, smallest first.
pub const SIZES: [(&str, Config); 2] = [("demo", DEMO), ("large", LARGE)];

/// The seed of the weights and of the prompt of every [`Workload`].
const SEED: u64 = 0x7469_6e79;

/// A small deterministic generator (SplitMix64), so that every run times the same model.
struct Rng(u64);

impl Rng {
    /// The next value, uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` values uniform in `[-scale, scale)`.
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }

    /// `n` weights of a matrix with `fan_in` rows: uniform with standard deviation
    /// `1 / sqrt(fan_in)`, so that a unit-scale input gives a unit-scale output.
    fn weights(&mut self, n: usize, fan_in: usize) -> Vec<f32> {
        self.vec(n, (3.0 / fan_in as f32).sqrt())
    }
}

/// A random model of shape `cfg`, the same for the same `seed`.
///
/// Matrices have uniform entries of standard deviation `1 / sqrt(fan_in)` (`W_O` counts the
/// inputs of all heads together, since their results add up), embeddings are uniform in
/// [-1, 1), biases small, and LayerNorm weights near 1. Activations, attention scores and
/// logits then stay of order 1 at any size: nothing overflows, and the softmax never
/// saturates into a one-hot pattern that would hide numerical differences.
pub fn random_params(cfg: &Config, seed: u64) -> Params {
    let mut rng = Rng(seed);
    let c = *cfg;
    let has_ln = matches!(c.norm, Norm::LayerNorm { .. });
    let ln = |rng: &mut Rng| {
        has_ln.then(|| LnParams {
            w: rng.vec(c.d_model, 0.1).iter().map(|v| 1.0 + v).collect(),
            b: rng.vec(c.d_model, 0.1),
        })
    };
    let w_e = rng.vec(c.d_vocab * c.d_model, 1.0);
    let w_pos = (c.pos != PosEmbed::None).then(|| rng.vec(c.n_ctx * c.d_model, 1.0));
    let qkv = c.n_heads * c.d_model * c.d_head;
    let heads = c.n_heads * c.d_head;
    let layers = (0..c.n_layers)
        .map(|_| LayerParams {
            ln1: ln(&mut rng),
            w_q: rng.weights(qkv, c.d_model),
            w_k: rng.weights(qkv, c.d_model),
            w_v: rng.weights(qkv, c.d_model),
            b_q: rng.vec(heads, 0.05),
            b_k: rng.vec(heads, 0.05),
            b_v: rng.vec(heads, 0.05),
            w_o: rng.weights(qkv, heads),
            b_o: rng.vec(c.d_model, 0.05),
        })
        .collect();
    let ln_final = ln(&mut rng);
    Params {
        config: c,
        vocab: None,
        w_e,
        w_pos,
        layers,
        ln_final,
        w_u: rng.weights(c.d_model * c.d_vocab, c.d_model),
        b_u: rng.vec(c.d_vocab, 0.05),
    }
}

/// `n_ctx / 2` random tokens of `cfg`'s vocabulary, the same for the same `seed`: the
/// prompt whose last token every benchmark decodes.
pub fn prompt(cfg: &Config, seed: u64) -> Vec<u32> {
    let mut rng = Rng(seed ^ 0x5EED);
    (0..cfg.n_ctx / 2)
        .map(|_| (rng.next_u64() % cfg.d_vocab as u64) as u32)
        .collect()
}

/// One benchmarked size: its weights (as parameters and as an `f32` blob) and its prompt.
pub struct Workload {
    /// The weights, for the candle reference.
    pub params: Params,
    /// The same weights as an `f32` blob in aligned memory, for the kernel.
    pub blob: AlignedBytes,
    /// `n_ctx / 2` tokens; the benchmarks decode the last one.
    pub prompt: Vec<u32>,
}

impl Workload {
    /// The workload of size `cfg`, with the fixed seed every benchmark uses.
    pub fn new(cfg: &Config) -> Self {
        let params = random_params(cfg, SEED);
        let bytes = blob_from_params(&params).expect("random parameters make a valid blob");
        Workload {
            blob: AlignedBytes::new(&bytes),
            prompt: prompt(cfg, SEED),
            params,
        }
    }

    /// The kernel's view of the blob.
    pub fn model(&self) -> Model<'_> {
        Model::from_blob(self.blob.as_bytes()).expect("the blob was just written")
    }

    /// The candle reference of the same weights, computing in `f32`.
    pub fn reference(&self) -> Reference {
        Reference::new_f32(&self.params).expect("random parameters fit the reference")
    }

    /// The prompt but its last token: what the decoder holds before the timed step.
    pub fn context(&self) -> &[u32] {
        &self.prompt[..self.prompt.len() - 1]
    }

    /// The last token of the prompt: the token the timed step decodes, at position
    /// `n_ctx / 2 - 1`.
    pub fn next_token(&self) -> u32 {
        self.prompt[self.prompt.len() - 1]
    }

    /// Brings `decoder` to the state before the timed step: reset, then the
    /// [`context`](Self::context) prefilled into its KV cache.
    pub fn prepare(&self, decoder: &mut Decoder<'_, '_>) {
        decoder.reset();
        decoder
            .prefill(self.context())
            .expect("the context fits the model");
    }

    /// The kernel's logits for the last token of the prompt, decoded the way
    /// `kernel_f32_step` times it: `[d_vocab]`.
    pub fn kernel_logits(&self) -> Vec<f32> {
        let model = self.model();
        let mut arena = vec![0.0; model.config().state_len()];
        let mut decoder = Decoder::new(&model, &mut arena).expect("the arena is large enough");
        self.prepare(&mut decoder);
        decoder
            .step(self.next_token())
            .expect("the token fits the model")
            .to_vec()
    }

    /// The kernel's logits for the last token of the prompt, from one prefill of the whole
    /// prompt the way `kernel_f32_prefill` times it: `[d_vocab]`.
    pub fn kernel_prefill_logits(&self) -> Vec<f32> {
        let model = self.model();
        let mut arena = vec![0.0; model.config().state_len()];
        let mut decoder = Decoder::new(&model, &mut arena).expect("the arena is large enough");
        decoder
            .prefill(&self.prompt)
            .expect("the prompt fits the model")
            .to_vec()
    }

    /// The candle reference's logits for the last token of the prompt, computed the way
    /// `candle_f32_forward` times it: `[d_vocab]`.
    pub fn candle_logits(&self, reference: &Reference) -> Vec<f32> {
        candle_last_logits(reference, &self.prompt)
            .to_vec1()
            .expect("f32 logits")
    }
}

/// What `candle_f32_forward` times: the full forward pass of `tokens` (candle's reference
/// has no KV cache), then the logits row of the last position: `[d_vocab]`.
pub fn candle_last_logits(reference: &Reference, tokens: &[u32]) -> Tensor {
    reference
        .logits(tokens)
        .and_then(|logits| Ok(logits.get(tokens.len() - 1)?))
        .expect("the prompt fits the model")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest elementwise `|a - b|`.
    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn kernel_and_candle_agree_on_the_benchmarked_inputs() {
        for (name, cfg) in SIZES {
            let work = Workload::new(&cfg);
            let kernel = work.kernel_logits();
            let prefill = work.kernel_prefill_logits();
            let candle = work.candle_logits(&work.reference());
            assert_eq!(kernel.len(), cfg.d_vocab);
            assert!(kernel.iter().all(|v| v.is_finite()), "{name}: {kernel:?}");
            let err = max_abs_diff(&kernel, &candle);
            assert!(err < 1e-3, "{name}: kernel and candle differ by {err}");
            let err = max_abs_diff(&kernel, &prefill);
            assert!(err < 1e-5, "{name}: step and prefill differ by {err}");
            // Logits of order 1: the comparison is not between two vectors of near-zeros.
            let spread = kernel.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                spread > 0.5 && spread < 100.0,
                "{name}: max |logit| {spread}"
            );
        }
    }

    #[test]
    fn workloads_are_deterministic() {
        assert_eq!(random_params(&DEMO, 3), random_params(&DEMO, 3));
        assert_ne!(random_params(&DEMO, 3), random_params(&DEMO, 4));
        let p = prompt(&LARGE, 1);
        assert_eq!(p, prompt(&LARGE, 1));
        assert_eq!(p.len(), LARGE.n_ctx / 2);
        assert!(p.iter().all(|&t| (t as usize) < LARGE.d_vocab));
    }
}
