//! Models as files: a `.tlb` blob, or a TransformerLens `.safetensors` checkpoint turned into an
//! `f32` blob in memory. Either way the kernel runs it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tinylens::blob::{TensorId, TensorKind};
use tinylens::model::Weights;
use tinylens::writer::{write_f32, AlignedBytes};

use crate::import::load_checkpoint;
use crate::params::{LayerParams, LnParams, Params};

/// A model file loaded for the kernel: the blob bytes (aligned), and the checkpoint's
/// parameters when the file was a checkpoint.
pub struct LoadedModel {
    /// The blob, in aligned memory.
    pub blob: AlignedBytes,
    /// The parameters, when loaded from safetensors.
    pub params: Option<Params>,
}

impl LoadedModel {
    /// The kernel's view of the blob.
    pub fn model(&self) -> Result<tinylens::Model<'_>> {
        tinylens::Model::from_blob(self.blob.as_bytes()).map_err(|e| anyhow::anyhow!(e))
    }

    /// The parameters: the checkpoint's, or read back from an `f32` blob (the circuit
    /// analyses read float weights).
    pub fn params(&self) -> Result<Params> {
        match &self.params {
            Some(p) => Ok(p.clone()),
            None => params_of_blob(&self.model()?),
        }
    }
}

/// The parameters an `f32` blob holds.
pub fn params_of_blob(model: &tinylens::Model<'_>) -> Result<Params> {
    let cfg = *model.config();
    let w = match model.weights() {
        Weights::F32(w) => *w,
        #[allow(unreachable_patterns)]
        _ => bail!(
            "circuit analysis reads f32 weights; this blob is {}",
            model.format().name()
        ),
    };
    let ln = |l: Option<tinylens::model::LnWeights<'_>>| {
        l.map(|l| LnParams {
            w: l.w.to_vec(),
            b: l.b.to_vec(),
        })
    };
    Ok(Params {
        config: cfg,
        vocab: model
            .vocab()
            .map(|v| v.iter().map(str::to_string).collect()),
        w_e: w.w_e().to_vec(),
        w_pos: w.w_pos().map(<[f32]>::to_vec),
        layers: (0..cfg.n_layers)
            .map(|l| {
                let x = w.layer(l);
                LayerParams {
                    ln1: ln(x.ln1),
                    w_q: x.w_q.to_vec(),
                    w_k: x.w_k.to_vec(),
                    w_v: x.w_v.to_vec(),
                    b_q: x.b_q.to_vec(),
                    b_k: x.b_k.to_vec(),
                    b_v: x.b_v.to_vec(),
                    w_o: x.w_o.to_vec(),
                    b_o: x.b_o.to_vec(),
                }
            })
            .collect(),
        ln_final: ln(w.ln_final()),
        w_u: w.w_u().to_vec(),
        b_u: w.b_u().to_vec(),
    })
}

/// Loads `path`: `.tlb` as a blob; `.safetensors` as a checkpoint (with `config` or the
/// `config.json` beside it) written to an `f32` blob.
pub fn load_model(path: &Path, config: Option<&Path>) -> Result<LoadedModel> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => {
            let params = load_checkpoint(path, config)
                .with_context(|| format!("cannot import {}", path.display()))?;
            let bytes = blob_from_params(&params)?;
            Ok(LoadedModel {
                blob: AlignedBytes::new(&bytes),
                params: Some(params),
            })
        }
        _ => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            // A file that is no blob and not named as one: say what it is instead.
            let named_tlb = path.extension().is_some_and(|e| e == "tlb");
            if !named_tlb && !bytes.starts_with(&tinylens::blob::MAGIC) {
                if let Some(e) = crate::import::foreign_file_error(path, &bytes) {
                    return Err(e).with_context(|| format!("cannot load {}", path.display()));
                }
            }
            let blob = AlignedBytes::new(&bytes);
            tinylens::Model::from_blob(blob.as_bytes())
                .with_context(|| format!("{} is not a valid model blob", path.display()))?;
            Ok(LoadedModel { blob, params: None })
        }
    }
}

/// The tensor of `params` that `id` names.
pub fn tensor(params: &Params, id: TensorId) -> &[f32] {
    let layer = params.layers.get(id.layer as usize);
    let ln1 = layer.and_then(|l| l.ln1.as_ref());
    let empty: &[f32] = &[];
    match id.kind {
        TensorKind::WE => &params.w_e,
        TensorKind::WPos => params.w_pos.as_deref().unwrap_or(empty),
        TensorKind::Ln1W => ln1.map_or(empty, |ln| &ln.w),
        TensorKind::Ln1B => ln1.map_or(empty, |ln| &ln.b),
        TensorKind::WQ => layer.map_or(empty, |l| &l.w_q),
        TensorKind::WK => layer.map_or(empty, |l| &l.w_k),
        TensorKind::WV => layer.map_or(empty, |l| &l.w_v),
        TensorKind::BQ => layer.map_or(empty, |l| &l.b_q),
        TensorKind::BK => layer.map_or(empty, |l| &l.b_k),
        TensorKind::BV => layer.map_or(empty, |l| &l.b_v),
        TensorKind::WO => layer.map_or(empty, |l| &l.w_o),
        TensorKind::BO => layer.map_or(empty, |l| &l.b_o),
        TensorKind::LnFinalW => params.ln_final.as_ref().map_or(empty, |ln| &ln.w),
        TensorKind::LnFinalB => params.ln_final.as_ref().map_or(empty, |ln| &ln.b),
        TensorKind::WU => &params.w_u,
        TensorKind::BU => &params.b_u,
        // Quantization records exist only in quantized blobs (see `quantize.rs`).
        _ => empty,
    }
}

/// Writes `params` as an `f32` blob.
pub fn blob_from_params(params: &Params) -> Result<Vec<u8>> {
    if params.layers.len() != params.config.n_layers {
        bail!(
            "checkpoint has {} layers, config says {}",
            params.layers.len(),
            params.config.n_layers
        );
    }
    write_f32(&params.config, params.vocab.as_deref(), |id| {
        tensor(params, id)
    })
    .map_err(|e| anyhow::anyhow!("cannot write blob: {e}"))
}
