//! What a blob holds, as typed views borrowed in place: one module per number format. The
//! forward passes read these; nothing here imports a forward pass.

#[deny(clippy::indexing_slicing)]
pub mod f32;
#[cfg(feature = "i8")]
pub mod i8;
#[cfg(feature = "int")]
pub mod int;

use crate::blob::{tensors, Blob, NumberFormat, TensorId};
use crate::{Config, Error};
use f32::F32Weights;
#[cfg(feature = "i8")]
use i8::I8Weights;
#[cfg(feature = "int")]
use int::IntWeights;

/// The three projections of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proj {
    /// `W_Q`, `b_Q`
    Q,
    /// `W_K`, `b_K`
    K,
    /// `W_V`, `b_V`
    V,
}

/// The weights of a model in whichever number format its blob holds.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Weights<'a> {
    /// Every tensor in `f32`.
    F32(F32Weights<'a>),
    /// int8 matrices with `f32` scales (formats `i8` and `i8-block32`).
    #[cfg(feature = "i8")]
    I8(i8::I8Weights<'a>),
    /// Full integer (format `int`).
    #[cfg(feature = "int")]
    Int(int::IntWeights<'a>),
}

#[deny(clippy::indexing_slicing)]
impl<'a> Weights<'a> {
    /// The views of a parsed blob's data section: checks that the data is aligned for
    /// in-place reading, that no float is NaN or infinite, and the `int` format's records.
    pub(crate) fn from_blob(blob: &Blob<'a>) -> Result<Self, Error> {
        let misaligned = Error::Misaligned {
            address_mod_4: blob.data.as_ptr() as usize % 4,
        };
        Ok(match blob.format {
            NumberFormat::F32 => {
                let data: &[f32] = bytemuck::try_cast_slice(blob.data).map_err(|_| misaligned)?;
                check_finite(&blob.config, data)?;
                Weights::F32(F32Weights::new(data, blob.config))
            }
            #[cfg(feature = "i8")]
            NumberFormat::I8 | NumberFormat::I8Block32 => {
                if blob.data.as_ptr() as usize % 4 != 0 {
                    return Err(misaligned);
                }
                let w = I8Weights::new(blob.data, blob.config, blob.format);
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
                let w = IntWeights::new(blob.data, blob.config);
                w.check()?;
                Weights::Int(w)
            }
            #[allow(unreachable_patterns)]
            other => return Err(Error::UnsupportedFormat(other.code())),
        })
    }
}

/// Finds the first NaN or infinity, naming its tensor.
#[deny(clippy::indexing_slicing)]
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
