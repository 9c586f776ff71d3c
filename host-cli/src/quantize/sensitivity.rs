//! `quantize --report`: how much of the error each quantized matrix causes on its own. Each
//! matrix in turn is rounded as the blob rounds it and put back, dequantized, into an
//! otherwise exact copy of the checkpoint; the f32 kernel runs that copy against the f64
//! reference. The sum of the rows is not the blob's error (errors interact), but the order
//! says where the error comes from.

use anyhow::Result;
use tinylens::blob::{tensors_in, NumberFormat, TensorKind};
use tinylens::writer::AlignedBytes;
use tinylens::Model;

use super::{quantize_kind, Rounding, MATRICES};
use crate::blobio::blob_from_params;
use crate::params::Params;
use crate::validate::validate;

/// One matrix's error alone.
#[derive(Clone, Debug)]
pub struct Sensitivity {
    /// TransformerLens' name of the matrix: `blocks.0.attn.W_Q`.
    pub name: String,
    /// Mean KL(reference || kernel) with only this matrix quantized.
    pub mean_kl: f64,
    /// The largest |logit difference| / logit range with only this matrix quantized.
    pub dlogit: f64,
}

/// The matrix `kind` of `layer`, to write into.
fn matrix_mut(params: &mut Params, kind: TensorKind, layer: usize) -> Option<&mut Vec<f32>> {
    let l = params.layers.get_mut(layer);
    match kind {
        TensorKind::WE => Some(&mut params.w_e),
        TensorKind::WPos => params.w_pos.as_mut(),
        TensorKind::WQ => l.map(|l| &mut l.w_q),
        TensorKind::WK => l.map(|l| &mut l.w_k),
        TensorKind::WV => l.map(|l| &mut l.w_v),
        TensorKind::WO => l.map(|l| &mut l.w_o),
        TensorKind::WU => Some(&mut params.w_u),
        _ => None,
    }
}

/// TransformerLens' name of a matrix.
pub fn matrix_name(kind: TensorKind, layer: usize) -> String {
    match kind {
        TensorKind::WE => "embed.W_E".into(),
        TensorKind::WPos => "pos_embed.W_pos".into(),
        TensorKind::WU => "unembed.W_U".into(),
        TensorKind::WQ => format!("blocks.{layer}.attn.W_Q"),
        TensorKind::WK => format!("blocks.{layer}.attn.W_K"),
        TensorKind::WV => format!("blocks.{layer}.attn.W_V"),
        TensorKind::WO => format!("blocks.{layer}.attn.W_O"),
        other => format!("{other:?}"),
    }
}

/// Every quantized matrix of `format`, alone, measured on `sequences`; largest error first.
pub fn sensitivity(
    params: &Params,
    format: NumberFormat,
    rounding: &Rounding,
    sequences: &[Vec<u32>],
) -> Result<Vec<Sensitivity>> {
    let cfg = params.config;
    let mut rows = Vec::new();
    for (tid, _, _) in tensors_in(&cfg, format) {
        if !MATRICES.contains(&tid.kind) {
            continue;
        }
        let layer = tid.layer as usize;
        let m = quantize_kind(params, tid.kind, layer, format, rounding);
        let mut one = params.clone();
        let Some(w) = matrix_mut(&mut one, tid.kind, layer) else {
            continue;
        };
        let scale = super::scale_of(tid.kind, &cfg, format, &m);
        for (k, (x, &q)) in w.iter_mut().zip(&m.q).enumerate() {
            *x = (q as f64 * scale(k)) as f32;
        }
        let blob = AlignedBytes::new(&blob_from_params(&one)?);
        let model = Model::from_blob(blob.as_bytes()).map_err(|e| anyhow::anyhow!(e))?;
        let report = validate(params, &model, sequences)?;
        rows.push(Sensitivity {
            name: matrix_name(tid.kind, layer),
            mean_kl: report.mean_kl,
            dlogit: report.logit_error(),
        });
    }
    rows.sort_by(|a, b| b.dlogit.total_cmp(&a.dlogit));
    Ok(rows)
}
