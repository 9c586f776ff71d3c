//! The host side of tinylens: import TransformerLens checkpoints, write blobs, run the kernel,
//! and check it against an independent float reference.

pub mod analysis;
pub mod blobio;
pub mod commands;
pub mod explorer;
pub mod files;
pub mod import;
pub mod inputs;
pub mod params;
pub mod quantize;
pub mod reference;
pub mod report;
pub mod tokenize;
pub mod trace;
pub mod train;
pub mod validate;
