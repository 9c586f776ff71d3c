//! What the fuzz targets run, shared by `fuzz_targets/*.rs` and `examples/seeds.rs` (which
//! writes the committed seed corpora). Each function takes bytes or a structured input the
//! fuzzer made and drives the public API through every path it can reach; the only failure
//! is a panic, a hang or an allocation past libFuzzer's limit.

use arbitrary::Arbitrary;
use tinylens::blob::CRC32;
use tinylens::writer::AlignedBytes;
use tinylens::{
    Config, Decoder, Error, IntDecoder, LnConvention, Model, Norm, NumberFormat, PosEmbed, Target,
    Term,
};
use tinylens_cli::params::{LayerParams, LnParams, Params};

/// Positions of KV cache the targets decode at most: a config may declare a huge `n_ctx`
/// (with no positional embedding it costs the blob nothing), and the fuzzer must not spend
/// its memory on it; `Decoder::with_context` takes a shorter cache.
pub const MAX_CTX: usize = 8;

// ------------------------------------------------------------------------------------------
// blob: Model::from_blob, then decoding, patterns and attribution in every format
// ------------------------------------------------------------------------------------------

/// The first byte of a `blob` input says what to repair before loading, so that the fuzzer
/// gets past the checks a random mutation almost never satisfies: bit 0 rewrites the CRC32
/// trailer, bit 1 the declared file length. The rest is the blob.
pub fn blob_input(data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut bytes = rest.to_vec();
    let n = bytes.len();
    if mode & 2 != 0 && n >= 20 {
        bytes[16..20].copy_from_slice(&(n as u32).to_le_bytes());
    }
    if mode & 1 != 0 && n >= 4 {
        let crc = CRC32.checksum(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

/// A seed for the `blob` target: a valid blob with both repairs asked for.
pub fn blob_seed(blob: &[u8]) -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(blob);
    out
}

/// Loads `data` (see [`blob_input`]) and, if it is a model, runs it.
pub fn fuzz_blob(data: &[u8]) {
    let bytes = AlignedBytes::new(&blob_input(data));
    let Ok(model) = Model::from_blob(bytes.as_bytes()) else {
        return;
    };
    // Everything a listing shows.
    let blob = model.blob();
    for (id, entry) in blob.entries() {
        let _ = (id.to_string(), entry.len);
    }
    if let Some(vocab) = model.vocab() {
        let _ = vocab.iter().count();
        let _ = vocab.text(vocab.len() as u32);
    }
    let cfg = *model.config();
    // Tokens at both ends of the vocabulary, one past it, then a walk through it.
    let v = cfg.d_vocab as u32;
    let tokens: Vec<u32> = [0, v - 1, v, u32::MAX]
        .into_iter()
        .chain((0..12).map(|i| (i * 7 + 3) % v))
        .collect();
    run_tokens(&model, &tokens);
}

/// Decodes `tokens` with whichever decoder the model's format has, sliding the window when
/// the context is full, and exercises every read-out after each step (errors are expected;
/// panics are the bug).
pub fn run_tokens(model: &Model<'_>, tokens: &[u32]) {
    let cfg = *model.config();
    let ctx = cfg.n_ctx.min(MAX_CTX);
    // The same drive for either decoder: step every token (sliding when the context is
    // full), then prefill, an empty prefill, a reset and a re-prefill, reading out after each.
    macro_rules! drive {
        ($dec:ident, $readouts:ident) => {{
            let mut history: Vec<u32> = Vec::new();
            for &t in tokens {
                let r = $dec.step(t).map(|_| ());
                if let Err(Error::ContextFull { .. }) = r {
                    let keep = (ctx / 2).max(1);
                    let _ = $dec.slide(&history[history.len() - keep..]);
                    let _ = $dec.step(t);
                }
                if (t as usize) < cfg.d_vocab {
                    history.push(t);
                }
                $readouts(&mut $dec, &cfg, t);
            }
            let _ = $dec.prefill(tokens);
            let _ = $dec.prefill(&[]);
            $dec.reset();
            let _ = $dec.prefill(&history[..history.len().min(ctx)]);
            $readouts(&mut $dec, &cfg, 0);
        }};
    }
    if model.format() == NumberFormat::Int {
        let mut arena = vec![0i32; cfg.int_state_len_for(ctx)];
        let Ok(mut dec) = IntDecoder::with_context(model, &mut arena, ctx) else {
            return;
        };
        drive!(dec, int_readouts);
    } else {
        let mut arena = vec![0.0f32; cfg.state_len_for(ctx)];
        let Ok(mut dec) = Decoder::with_context(model, &mut arena, ctx) else {
            return;
        };
        drive!(dec, f32_readouts);
    }
}

fn f32_readouts(dec: &mut Decoder<'_, '_>, cfg: &Config, t: u32) {
    let _ = dec.logits();
    let _ = dec.resid();
    for (l, h) in [
        (0, 0),
        (cfg.n_layers - 1, cfg.n_heads - 1),
        (cfg.n_layers, 0),
    ] {
        let _ = dec.pattern(l, h);
        let _ = dec.z(l, h);
    }
    let mut terms = vec![0.0f32; Term::count(cfg)];
    for conv in [LnConvention::Exact, LnConvention::TransformerLens] {
        let _ = dec.attribute(Target::Token(t), conv, &mut terms);
        let _ = dec.attribute(Target::Diff(0, t), conv, &mut terms[1..]);
    }
    if cfg.d_vocab * terms.len() <= 1 << 16 {
        let mut table = vec![0.0f32; terms.len() * cfg.d_vocab];
        let _ = dec.attribution_table(LnConvention::Exact, &mut table);
    }
}

fn int_readouts(dec: &mut IntDecoder<'_, '_>, cfg: &Config, t: u32) {
    let _ = dec.logits();
    let _ = dec.resid();
    for (l, h) in [
        (0, 0),
        (cfg.n_layers - 1, cfg.n_heads - 1),
        (cfg.n_layers, 0),
    ] {
        let _ = dec.pattern(l, h);
        let _ = dec.z(l, h);
    }
    let mut terms = vec![0i32; Term::count(cfg)];
    for conv in [LnConvention::Exact, LnConvention::TransformerLens] {
        let _ = dec.attribute(Target::Token(t), conv, &mut terms);
        let _ = dec.attribute(Target::Diff(0, t), conv, &mut terms[1..]);
    }
    if cfg.d_vocab * terms.len() <= 1 << 16 {
        let mut table = vec![0i32; terms.len() * cfg.d_vocab];
        let _ = dec.attribution_table(LnConvention::Exact, &mut table);
    }
}

// ------------------------------------------------------------------------------------------
// checkpoint: the safetensors importer with its config.json and vocab.json
// ------------------------------------------------------------------------------------------

/// A `checkpoint` input: `[u16 LE n][config.json: n bytes][u16 LE m][vocab.json: m bytes]`
/// then the safetensors file. A length of 0xFFFF means "no file".
pub fn checkpoint_input(data: &[u8]) -> (Option<&str>, Option<&str>, &[u8]) {
    fn take(data: &[u8]) -> (Option<&str>, &[u8]) {
        let Some((len, rest)) = data.split_first_chunk::<2>() else {
            return (None, data);
        };
        let n = u16::from_le_bytes(*len) as usize;
        if n == 0xFFFF || n > rest.len() {
            return (None, rest);
        }
        let (text, rest) = rest.split_at(n);
        (std::str::from_utf8(text).ok(), rest)
    }
    let (config, rest) = take(data);
    let (vocab, st) = take(rest);
    (config, vocab, st)
}

/// A seed for the `checkpoint` target.
pub fn checkpoint_seed(config: Option<&str>, vocab: Option<&str>, st: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for text in [config, vocab] {
        match text {
            Some(t) => {
                out.extend_from_slice(&(t.len() as u16).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            None => out.extend_from_slice(&0xFFFFu16.to_le_bytes()),
        }
    }
    out.extend_from_slice(st);
    out
}

/// Imports the checkpoint; if it is a model, writes its `f32` and `i8` blobs, loads them and
/// decodes a few tokens.
pub fn fuzz_checkpoint(data: &[u8]) {
    let (config, vocab, st) = checkpoint_input(data);
    let Ok(params) = tinylens_cli::import::load_checkpoint_bytes(st, config, vocab) else {
        return;
    };
    let cfg = params.config;
    let tokens: Vec<u32> = (0..6).map(|i| (i * 5 + 1) % cfg.d_vocab as u32).collect();
    for format in [NumberFormat::F32, NumberFormat::I8] {
        if let Ok(bytes) = tinylens_cli::quantize::quantize_params(&params, format, None) {
            let aligned = AlignedBytes::new(&bytes);
            let model = Model::from_blob(aligned.as_bytes())
                .expect("a blob the writer made from an imported checkpoint loads");
            run_tokens(&model, &tokens);
        }
    }
}

// ------------------------------------------------------------------------------------------
// decode: step on arbitrary token streams over small fuzzed configs, in every format
// ------------------------------------------------------------------------------------------

/// A small model and what to do with it.
#[derive(Arbitrary, Debug)]
pub struct DecodeInput {
    n_layers: u8,
    n_heads: u8,
    d_model: u8,
    d_head: u8,
    d_vocab: u8,
    n_ctx: u8,
    layer_norm: Option<u8>,
    pos: u8,
    format: u8,
    /// Weight values are drawn from this seed, times `2^scale_log2`.
    seed: u32,
    scale_log2: i8,
    /// Weights the fuzzer sets directly (cycled over the tensors, on top of the seeded ones).
    weights: Vec<f32>,
    tokens: Vec<u32>,
}

impl DecodeInput {
    /// The config the input describes, every dimension small.
    pub fn config(&self) -> Config {
        let dim = |v: u8, max: u8| 1 + (v % max) as usize;
        Config {
            n_layers: dim(self.n_layers, 3),
            n_heads: dim(self.n_heads, 3),
            d_model: dim(self.d_model, 16),
            d_head: dim(self.d_head, 8),
            d_vocab: dim(self.d_vocab, 32),
            n_ctx: dim(self.n_ctx, 12),
            norm: match self.layer_norm {
                None => Norm::None,
                Some(e) => Norm::LayerNorm {
                    eps: [0.0, 1e-12, 1e-5, 1.0][e as usize % 4],
                },
            },
            pos: [PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None][self.pos as usize % 3],
        }
    }

    /// The model's parameters: seeded pseudo-random values scaled by `2^scale_log2`, then the
    /// fuzzer's own values (finite ones; the importer refuses the rest) written over them.
    pub fn params(&self) -> Params {
        let cfg = self.config();
        let scale = 2f32.powi((self.scale_log2 % 40) as i32);
        let mut state = self.seed as u64 | 1;
        let mut own = self
            .weights
            .iter()
            .copied()
            .filter(|w| w.is_finite())
            .cycle();
        let use_own = self.weights.iter().any(|w| w.is_finite());
        let mut values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    if use_own && state % 3 == 0 {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        return own.next().unwrap_or(0.0);
                    }
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
                })
                .collect()
        };
        let (m, h, d, v, c) = (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_vocab, cfg.n_ctx);
        let has_ln = matches!(cfg.norm, Norm::LayerNorm { .. });
        let ln = |values: &mut dyn FnMut(usize) -> Vec<f32>| {
            has_ln.then(|| LnParams {
                w: values(m),
                b: values(m),
            })
        };
        let w_e = values(v * m);
        let w_pos = (cfg.pos != PosEmbed::None).then(|| values(c * m));
        let layers = (0..cfg.n_layers)
            .map(|_| LayerParams {
                ln1: ln(&mut values),
                w_q: values(h * m * d),
                w_k: values(h * m * d),
                w_v: values(h * m * d),
                b_q: values(h * d),
                b_k: values(h * d),
                b_v: values(h * d),
                w_o: values(h * d * m),
                b_o: values(m),
            })
            .collect();
        Params {
            config: cfg,
            vocab: None,
            w_e,
            w_pos,
            layers,
            ln_final: ln(&mut values),
            w_u: values(m * v),
            b_u: values(v),
        }
    }

    /// The number format of the blob.
    pub fn format(&self) -> NumberFormat {
        NumberFormat::ALL[self.format as usize % NumberFormat::ALL.len()]
    }
}

/// Writes the input's model in its format (quantizing and calibrating as `tinylens quantize`
/// does), loads it and decodes the fuzzed token stream.
pub fn fuzz_decode(input: &DecodeInput) {
    let params = input.params();
    let Ok(bytes) = tinylens_cli::quantize::quantize_params(&params, input.format(), None) else {
        return;
    };
    let aligned = AlignedBytes::new(&bytes);
    let model = Model::from_blob(aligned.as_bytes())
        .expect("a blob the writer made from finite weights loads");
    let tokens = &input.tokens[..input.tokens.len().min(64)];
    run_tokens(&model, tokens);
}
