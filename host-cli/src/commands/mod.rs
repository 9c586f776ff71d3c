//! The subcommands of `tinylens`, one file each: its arguments (`Args`, as clap parses them)
//! and `run`, from file paths to printed tables and written files. `main.rs` parses and
//! dispatches; what a command computes lives in the library modules it calls, and what every
//! command feeds a model lives in [`crate::inputs`].

pub mod ablate;
pub mod circuits;
pub mod demo;
pub mod explore;
pub mod generate;
pub mod heads;
pub mod inspect;
pub mod lens;
pub mod patch;
pub mod plot;
pub mod quantize;
pub mod run;
pub mod train;
pub mod validate;

use std::path::{Path, PathBuf};

use crate::blobio::{load_model, LoadedModel};
use crate::inputs::Input;

/// `--tokens` or `--prompt`: the tokens of a run, exactly one of the two.
#[derive(clap::Args)]
#[group(id = "input", required = true, multiple = false)]
pub struct InputArgs {
    /// Token ids, comma separated.
    #[arg(long)]
    pub tokens: Option<String>,
    /// Text, encoded with the model's vocabulary.
    #[arg(long)]
    pub prompt: Option<String>,
}

/// The model a command reads, and `--config` for a checkpoint whose `config.json` is not
/// beside it.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// A .tlb blob or a .safetensors checkpoint.
    pub model: PathBuf,
    /// A TransformerLens config.json for a checkpoint.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl ModelArgs {
    /// Loads the model file.
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        load_model(&self.model, self.config.as_deref())
    }

    /// Refuses an output that is the model file or its config (or one of `others`).
    pub fn refuse_overwrite(&self, output: Option<&Path>, others: &[&Path]) -> anyhow::Result<()> {
        let Some(output) = output else {
            return Ok(());
        };
        let mut inputs = vec![self.model.as_path()];
        inputs.extend(self.config.as_deref());
        inputs.extend(others);
        crate::files::refuse_overwrite(output, &inputs)
    }
}

/// A model and the tokens to run it on: [`ModelArgs`] and [`InputArgs`].
#[derive(clap::Args)]
pub struct ModelInput {
    /// The model file and its config.
    #[command(flatten)]
    pub file: ModelArgs,
    /// The tokens.
    #[command(flatten)]
    pub input: InputArgs,
}

impl ModelInput {
    /// Loads the model file.
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        self.file.load()
    }

    /// The input the flags name.
    pub fn input(&self) -> Input {
        Input::from_flags(self.input.tokens.clone(), self.input.prompt.clone())
    }

    /// See [`ModelArgs::refuse_overwrite`].
    pub fn refuse_overwrite(&self, output: Option<&Path>, others: &[&Path]) -> anyhow::Result<()> {
        self.file.refuse_overwrite(output, others)
    }
}
