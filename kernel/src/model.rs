//! A loaded model: the checked blob and typed, borrowed views of its weights.

use crate::blob::{tensors, Blob, Layout, NumberFormat, TensorId, Vocab};
use crate::{Config, Error};

/// LayerNorm parameters: `w` and `b`, both `[d_model]`.
#[derive(Clone, Copy, Debug)]
pub struct LnWeights<'a> {
    /// Scale, `[d_model]`.
    pub w: &'a [f32],
    /// Shift, `[d_model]`.
    pub b: &'a [f32],
}

/// The weights of one attention layer, `blocks.{l}`, in TransformerLens' shapes.
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a> {
    /// `ln1`, when the model has LayerNorm.
    pub ln1: Option<LnWeights<'a>>,
    /// `W_Q`: `[n_heads, d_model, d_head]`
    pub w_q: &'a [f32],
    /// `W_K`: `[n_heads, d_model, d_head]`
    pub w_k: &'a [f32],
    /// `W_V`: `[n_heads, d_model, d_head]`
    pub w_v: &'a [f32],
    /// `b_Q`: `[n_heads, d_head]`
    pub b_q: &'a [f32],
    /// `b_K`: `[n_heads, d_head]`
    pub b_k: &'a [f32],
    /// `b_V`: `[n_heads, d_head]`
    pub b_v: &'a [f32],
    /// `W_O`: `[n_heads, d_head, d_model]`
    pub w_o: &'a [f32],
    /// `b_O`: `[d_model]`
    pub b_o: &'a [f32],
}

/// `f32` weights borrowed from a blob.
#[derive(Clone, Copy, Debug)]
pub struct F32Weights<'a> {
    data: &'a [f32],
    layout: Layout,
    config: Config,
}

impl<'a> F32Weights<'a> {
    /// `len` elements at `offset`. Offsets come from the checked layout, so the range is
    /// always inside `data`; an empty slice would only ever signal a bug, never a panic.
    fn slice(&self, offset: usize, len: usize) -> &'a [f32] {
        self.data.get(offset..offset + len).unwrap_or(&[])
    }

    /// `embed.W_E`: `[d_vocab, d_model]`
    pub fn w_e(&self) -> &'a [f32] {
        self.slice(self.layout.w_e, self.config.d_vocab * self.config.d_model)
    }

    /// `pos_embed.W_pos`: `[n_ctx, d_model]`, when the model has a positional embedding.
    pub fn w_pos(&self) -> Option<&'a [f32]> {
        match self.config.pos {
            crate::PosEmbed::None => None,
            _ => Some(self.slice(self.layout.w_pos, self.config.n_ctx * self.config.d_model)),
        }
    }

    /// The weights of block `l` (`l < n_layers`; callers index layers they iterate).
    pub fn layer(&self, l: usize) -> LayerWeights<'a> {
        let c = &self.config;
        let (h, m, d) = (c.n_heads, c.d_model, c.d_head);
        let base = l * self.layout.layer_stride;
        let o = &self.layout.layer0;
        let at = |offset: usize, len: usize| self.slice(base + offset, len);
        LayerWeights {
            ln1: match c.norm {
                crate::Norm::None => None,
                crate::Norm::LayerNorm { .. } => Some(LnWeights {
                    w: at(o.ln1_w, m),
                    b: at(o.ln1_b, m),
                }),
            },
            w_q: at(o.w_q, h * m * d),
            w_k: at(o.w_k, h * m * d),
            w_v: at(o.w_v, h * m * d),
            b_q: at(o.b_q, h * d),
            b_k: at(o.b_k, h * d),
            b_v: at(o.b_v, h * d),
            w_o: at(o.w_o, h * d * m),
            b_o: at(o.b_o, m),
        }
    }

    /// `ln_final`, when the model has LayerNorm.
    pub fn ln_final(&self) -> Option<LnWeights<'a>> {
        let m = self.config.d_model;
        match self.config.norm {
            crate::Norm::None => None,
            crate::Norm::LayerNorm { .. } => Some(LnWeights {
                w: self.slice(self.layout.ln_final_w, m),
                b: self.slice(self.layout.ln_final_b, m),
            }),
        }
    }

    /// `unembed.W_U`: `[d_model, d_vocab]`
    pub fn w_u(&self) -> &'a [f32] {
        self.slice(self.layout.w_u, self.config.d_model * self.config.d_vocab)
    }

    /// `unembed.b_U`: `[d_vocab]`
    pub fn b_u(&self) -> &'a [f32] {
        self.slice(self.layout.b_u, self.config.d_vocab)
    }
}

/// The weights of a model in whichever number format its blob holds.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Weights<'a> {
    /// Every tensor in `f32`.
    F32(F32Weights<'a>),
    /// int8 matrices with `f32` scales (formats `i8` and `i8-block32`).
    #[cfg(feature = "i8")]
    I8(crate::forward_i8::I8Weights<'a>),
    /// Full integer (format `int`).
    #[cfg(feature = "int")]
    Int(crate::forward_int::IntWeights<'a>),
}

/// A model ready to run: checked, and borrowing its weights from the blob's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    blob: Blob<'a>,
    weights: Weights<'a>,
}

impl<'a> Model<'a> {
    /// Loads a model from a blob, checking everything [`Blob::parse`] checks, that the bytes
    /// are aligned for in-place reading, and that no weight is NaN or infinite.
    pub fn from_blob(bytes: &'a [u8]) -> Result<Self, Error> {
        if cfg!(target_endian = "big") {
            return Err(Error::BigEndian);
        }
        let blob = Blob::parse(bytes)?;
        let misaligned = Error::Misaligned {
            address_mod_4: bytes.as_ptr() as usize % 4,
        };
        let weights = match blob.format {
            NumberFormat::F32 => {
                let data: &[f32] = bytemuck::try_cast_slice(blob.data).map_err(|_| misaligned)?;
                check_finite(&blob.config, data)?;
                Weights::F32(F32Weights {
                    data,
                    layout: Layout::new(&blob.config, 4),
                    config: blob.config,
                })
            }
            #[cfg(feature = "i8")]
            NumberFormat::I8 | NumberFormat::I8Block32 => {
                if blob.data.as_ptr() as usize % 4 != 0 {
                    return Err(misaligned);
                }
                let w = crate::forward_i8::I8Weights::new(blob.data, blob.config, blob.format);
                for (kind, layer, values) in w.f32_tensors() {
                    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                        let tensor = TensorId {
                            kind,
                            layer: layer as u32,
                        };
                        return Err(Error::NonFinite { tensor, index });
                    }
                }
                Weights::I8(w)
            }
            #[cfg(feature = "int")]
            NumberFormat::Int => {
                if blob.data.as_ptr() as usize % 4 != 0 {
                    return Err(misaligned);
                }
                let w = crate::forward_int::IntWeights::new(blob.data, blob.config);
                w.check()?;
                Weights::Int(w)
            }
            #[allow(unreachable_patterns)]
            other => return Err(Error::UnsupportedFormat(other.code())),
        };
        Ok(Model { blob, weights })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &Config {
        &self.blob.config
    }

    /// The number format of the weights.
    pub fn format(&self) -> NumberFormat {
        self.blob.format
    }

    /// The weights.
    pub fn weights(&self) -> &Weights<'a> {
        &self.weights
    }

    /// The checked blob (directory, checksum, sizes).
    pub fn blob(&self) -> &Blob<'a> {
        &self.blob
    }

    /// The tokenizer vocabulary, if the blob has one.
    pub fn vocab(&self) -> Option<Vocab<'a>> {
        self.blob.vocab
    }
}

/// Finds the first NaN or infinity, naming its tensor.
fn check_finite(cfg: &Config, data: &[f32]) -> Result<(), Error> {
    let mut at = 0usize;
    for (tensor, len) in tensors(cfg) {
        let values = data.get(at..at + len).unwrap_or(&[]);
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                tensor: tensor as TensorId,
                index,
            });
        }
        at += crate::blob::align_up(len * 4) / 4;
    }
    Ok(())
}
