//! Full-integer weights (format `int`): int8 matrices, `i32` biases and LayerNorm words, and
//! the (multiplier, shift) records that carry every scale, as the blob holds them.

use crate::blob::{ByteLayout, NumberFormat, TensorKind};
use crate::fixed::{Requant, SHIFT_MAX, SHIFT_MIN};
use crate::{Config, Error, Norm, PosEmbed};

/// Largest `d_model` the integer LayerNorm handles (its sums of squares fit 64 bits).
pub const MAX_D_MODEL: usize = 1024;

/// Weights of an `int` blob, borrowed in place.
#[derive(Clone, Copy, Debug)]
pub struct IntWeights<'a> {
    data: &'a [u8],
    layout: ByteLayout,
    config: Config,
}

impl<'a> IntWeights<'a> {
    pub(crate) fn new(data: &'a [u8], config: Config) -> Self {
        IntWeights {
            data,
            layout: ByteLayout::new(&config, NumberFormat::Int),
            config,
        }
    }

    fn bytes(&self, kind: TensorKind, layer: usize) -> &'a [u8] {
        let range = self
            .layout
            .range(&self.config, NumberFormat::Int, kind, layer);
        self.data.get(range).unwrap_or(&[])
    }

    /// An int8 tensor (`W_E`, `W_pos`, `W_Q`, ...).
    pub fn i8s(&self, kind: TensorKind, layer: usize) -> &'a [i8] {
        bytemuck::cast_slice(self.bytes(kind, layer))
    }

    /// An `i32` tensor (biases, LayerNorm words, quantization records).
    pub fn i32s(&self, kind: TensorKind, layer: usize) -> &'a [i32] {
        bytemuck::try_cast_slice(self.bytes(kind, layer)).unwrap_or(&[])
    }

    /// Offsets of the sub-arrays of the global record (FORMAT.md): embed, pos, unembed, eps.
    fn global_parts(&self) -> [usize; 4] {
        let (m, v) = (self.config.d_model, self.config.d_vocab);
        let pos = if self.config.pos == PosEmbed::Standard {
            2 * m
        } else {
            0
        };
        [0, 2 * m, 2 * m + pos, 2 * m + pos + 2 * v]
    }

    /// Offsets in a layer record: q, k, v, softmax, z, o, pos, eps.
    fn layer_parts(&self) -> [usize; 8] {
        let c = &self.config;
        let hd2 = 2 * c.n_heads * c.d_head;
        let h2 = 2 * c.n_heads;
        let m2 = 2 * c.d_model;
        let pos = if c.pos == PosEmbed::Shortformer {
            m2
        } else {
            0
        };
        let q = 0;
        let soft = 3 * hd2;
        let o = soft + h2 + hd2;
        [q, hd2, 2 * hd2, soft, soft + h2, o, o + m2, o + m2 + pos]
    }

    fn global(&self, part: usize, len: usize) -> &'a [i32] {
        let at = self.global_parts()[part];
        self.i32s(TensorKind::Quant, 0)
            .get(at..at + len)
            .unwrap_or(&[])
    }

    fn layer_record(&self, l: usize, part: usize, len: usize) -> &'a [i32] {
        let at = self.layer_parts()[part];
        self.i32s(TensorKind::LayerQuant, l)
            .get(at..at + len)
            .unwrap_or(&[])
    }

    fn eps(words: &[i32]) -> u64 {
        match words {
            [lo, hi] => (*lo as u32 as u64) | ((*hi as u32 as u64) << 32),
            _ => 0,
        }
    }

    /// `W_E` column requantization to the residual scale: `[d_model]` pairs.
    pub fn rq_embed(&self) -> &'a [i32] {
        self.global(0, 2 * self.config.d_model)
    }
    /// `W_pos` column requantization to the residual scale (standard positions).
    pub fn rq_pos(&self) -> &'a [i32] {
        self.global(1, 2 * self.config.d_model)
    }
    /// Unembedding accumulator to Q16.16 logits: `[d_vocab]` pairs.
    pub fn rq_unembed(&self) -> &'a [i32] {
        self.global(2, 2 * self.config.d_vocab)
    }
    /// `ln_final`'s integer epsilon.
    pub fn ln_final_eps(&self) -> u64 {
        Self::eps(self.global(3, 2))
    }
    /// Projection `p` (0 = q, 1 = k, 2 = v) of layer `l`, head `h`: `[d_head]` pairs.
    pub fn rq_proj(&self, l: usize, p: usize, h: usize) -> &'a [i32] {
        let d = self.config.d_head;
        let all = self.layer_record(l, p, 2 * self.config.n_heads * d);
        all.get(2 * h * d..2 * (h + 1) * d).unwrap_or(&[])
    }
    /// Raw score to log2 units (Q8) for the softmax of head `h`.
    pub fn rq_softmax(&self, l: usize, h: usize) -> Requant {
        Requant::from_pair(self.layer_record(l, 3, 2 * self.config.n_heads), h)
    }
    /// `sum p v` (Q15 x int8) to the `z` scale, head `h`: `[d_head]` pairs (values have one
    /// scale per dimension).
    pub fn rq_z(&self, l: usize, h: usize) -> &'a [i32] {
        let d = self.config.d_head;
        let all = self.layer_record(l, 4, 2 * self.config.n_heads * d);
        all.get(2 * h * d..2 * (h + 1) * d).unwrap_or(&[])
    }
    /// `z @ W_O` accumulator to the residual scale: `[d_model]` pairs.
    pub fn rq_o(&self, l: usize) -> &'a [i32] {
        self.layer_record(l, 5, 2 * self.config.d_model)
    }
    /// Shortformer: `W_pos` columns to layer `l`'s LayerNorm-output scale.
    pub fn rq_pos_layer(&self, l: usize) -> &'a [i32] {
        self.layer_record(l, 6, 2 * self.config.d_model)
    }
    /// `ln1`'s integer epsilon in layer `l`.
    pub fn ln1_eps(&self, l: usize) -> u64 {
        Self::eps(self.layer_record(l, 7, 2))
    }

    /// Checks every (multiplier, shift) pair: multipliers non-negative, shifts in range.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let c = self.config;
        let check_pairs = |words: &'a [i32], end: usize, tensor: crate::blob::TensorId| {
            for (i, pair) in words[..end.min(words.len())].chunks_exact(2).enumerate() {
                if pair[0] < 0 || !(SHIFT_MIN..=SHIFT_MAX).contains(&pair[1]) {
                    return Err(Error::QuantParam {
                        tensor,
                        index: 2 * i,
                    });
                }
            }
            Ok(())
        };
        let id = |kind, layer| crate::blob::TensorId { kind, layer };
        check_pairs(
            self.i32s(TensorKind::Quant, 0),
            self.global_parts()[3],
            id(TensorKind::Quant, 0),
        )?;
        for l in 0..c.n_layers {
            check_pairs(
                self.i32s(TensorKind::LayerQuant, l),
                self.layer_parts()[7],
                id(TensorKind::LayerQuant, l as u32),
            )?;
        }
        if matches!(c.norm, Norm::LayerNorm { .. }) && c.d_model > MAX_D_MODEL {
            return Err(Error::BadConfig("the int format needs d_model <= 1024"));
        }
        Ok(())
    }
}
