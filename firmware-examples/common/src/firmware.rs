//! The whole demo of a firmware example in one call: what every `main` does once its target is
//! set up.

use tinylens::{Config, Model};

use crate::cost::Clock;
use crate::format::Format;
use crate::models::same_config;
use crate::report::Report;
use crate::transcript::{run, Demo, DemoError, Summary};

/// Runs `demo` on the model in `blob` and ends the run through `report`: loads the model,
/// checks that its config is `config` (the one `state` was sized from), builds the decoder of
/// format `F` over `state`, runs the transcript timed by `clock`, then
/// [`Report::finish`] or [`Report::fail`] with the reason.
pub fn run_demo<F: Format>(
    blob: &[u8],
    config: &Config,
    demo: &Demo<'_>,
    state: &mut [F::Word],
    report: &mut impl Report,
    clock: &mut impl Clock,
) -> ! {
    match load_and_run::<F>(blob, config, demo, state, report, clock) {
        Ok(_) => report.finish(),
        Err(e) => report.fail(&e),
    }
}

/// [`run_demo`] up to its end: the summary, or why it stopped.
fn load_and_run<F: Format>(
    blob: &[u8],
    config: &Config,
    demo: &Demo<'_>,
    state: &mut [F::Word],
    report: &mut impl Report,
    clock: &mut impl Clock,
) -> Result<Summary, DemoError> {
    let model = Model::from_blob(blob)?;
    if !same_config(model.config(), config) {
        return Err(DemoError::Config);
    }
    let mut decoder = F::decoder(&model, state)?;
    run(&model, &mut decoder, config.n_ctx, demo, report, clock)
}
