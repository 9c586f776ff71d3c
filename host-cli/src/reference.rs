//! An independent f64 float reference of the attention-only forward pass, written with candle.
