//! The two decoders a firmware can run, as types, so that one function runs the demo on either:
//! `Float` (blobs `f32`, `i8`, `i8-block32`, state in `f32`) and `Int` (blob `int`, state in
//! `i32` words, no float at run time).

use tinylens::{Error, Model};

use crate::transcript::Engine;

/// A decoder family: the element of its state and how to build it over a model.
pub trait Format {
    /// One element of the decoding state: `f32` or `i32`.
    type Word;
    /// The decoder.
    type Decoder<'m, 's>: Engine
    where
        Self::Word: 's;
    /// A decoder of `model` over `state`, for the model's whole context.
    fn decoder<'m, 's>(
        model: &Model<'m>,
        state: &'s mut [Self::Word],
    ) -> Result<Self::Decoder<'m, 's>, Error>;
}

/// [`tinylens::Decoder`]: float activations, state of `Config::state_len()` `f32`s.
#[cfg(feature = "float")]
pub struct Float;

#[cfg(feature = "float")]
impl Format for Float {
    type Word = f32;
    type Decoder<'m, 's> = tinylens::Decoder<'m, 's>;
    fn decoder<'m, 's>(
        model: &Model<'m>,
        state: &'s mut [f32],
    ) -> Result<tinylens::Decoder<'m, 's>, Error> {
        tinylens::Decoder::new(model, state)
    }
}

/// [`tinylens::IntDecoder`]: the full-integer path, state of `Config::int_state_len()` words.
#[cfg(feature = "int")]
pub struct Int;

#[cfg(feature = "int")]
impl Format for Int {
    type Word = i32;
    type Decoder<'m, 's> = tinylens::IntDecoder<'m, 's>;
    fn decoder<'m, 's>(
        model: &Model<'m>,
        state: &'s mut [i32],
    ) -> Result<tinylens::IntDecoder<'m, 's>, Error> {
        tinylens::IntDecoder::new(model, state)
    }
}
