//! The subcommands of `tinylens`, one file each: its arguments (`Args`, as clap parses them)
//! and `run`, from file paths to printed tables and written files. `main.rs` parses and
//! dispatches; what a command computes lives in the library modules it calls, and what every
//! command feeds a model lives in [`crate::inputs`].

pub mod ablate;
pub mod circuits;
pub mod demo;
pub mod heads;
pub mod inspect;
pub mod plot;
pub mod quantize;
pub mod run;
pub mod train;
pub mod validate;
