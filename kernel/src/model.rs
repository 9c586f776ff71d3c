//! A loaded model: the checked blob and typed, borrowed views of its weights.

use crate::blob::{Blob, NumberFormat, Vocab};
pub use crate::weights::f32::{F32Weights, LayerWeights, LnWeights};
pub use crate::weights::Weights;
use crate::{Config, Error};

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
        let weights = Weights::from_blob(&blob)?;
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
