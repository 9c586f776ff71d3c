//! The whole demo of a firmware example in one call: what every `main` does once its target is
//! set up.

use tinylens::{Config, Model};

use crate::cost::Clock;
use crate::format::Format;
use crate::models::same_config;
use crate::report::Report;
use crate::transcript::{run, Demo, DemoError, Summary};

/// A model built into a firmware: the blob, the config the firmware sized its state from, and
/// what to run on it. Each example's `build.rs` writes one from the blob (`embed-model`), as
/// `static MODEL`, with the `State` type sized from `config`.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedModel<'a> {
    /// The blob, 16-byte aligned (`tinylens::include_blob!`).
    pub blob: &'a [u8],
    /// The blob's config, as it was read when building.
    pub config: Config,
    /// The prompt and how many tokens to generate.
    pub demo: Demo<'a>,
}

/// Runs the demo of `model` and ends the run through `report`: loads the blob, checks that
/// its config is the one `state` was sized from, builds the decoder of format `F` over
/// `state`, runs the transcript timed by `clock`, then [`Report::finish`] or
/// [`Report::fail`] with the reason.
pub fn run_demo<F: Format>(
    model: &EmbeddedModel<'_>,
    state: &mut [F::Word],
    report: &mut impl Report,
    clock: &mut impl Clock,
) -> ! {
    match load_and_run::<F>(model, state, report, clock) {
        Ok(_) => report.finish(),
        Err(e) => report.fail(&e),
    }
}

/// [`run_demo`] up to its end: the summary, or why it stopped.
fn load_and_run<F: Format>(
    embedded: &EmbeddedModel<'_>,
    state: &mut [F::Word],
    report: &mut impl Report,
    clock: &mut impl Clock,
) -> Result<Summary, DemoError> {
    let model = Model::from_blob(embedded.blob)?;
    if !same_config(model.config(), &embedded.config) {
        return Err(DemoError::Config);
    }
    let mut decoder = F::decoder(&model, state)?;
    let context = embedded.config.n_ctx;
    run(&model, &mut decoder, context, &embedded.demo, report, clock)
}

/// Includes what the example's `build.rs` wrote for its model (`embed-model`): `CONFIG`,
/// `static MODEL: common::EmbeddedModel` and `type State` (the decoding state's static arena,
/// sized from `CONFIG`). `embed_model!()` includes `model.rs`; a package with one binary per
/// format names its file, `embed_model!("model-int.rs")`.
#[macro_export]
macro_rules! embed_model {
    () => {
        $crate::embed_model!("model.rs");
    };
    ($file:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $file));
    };
}
