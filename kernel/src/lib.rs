#![no_std]
//! tinylens kernel (work in progress)
#![allow(missing_docs)]
pub mod config;
pub use config::{Config, Norm, PosEmbed};
