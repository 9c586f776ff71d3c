//! Shared helpers of the cross-crate tests: the TransformerLens fixtures and the tolerances
//! conformance is held to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

/// Tolerances of conformance to TransformerLens, in one place (absolute).
pub mod tolerance {
    /// Logits and every attribution term.
    pub const LOGIT: f32 = 1e-4;
    /// Attention patterns.
    pub const PATTERN: f32 = 1e-5;
    /// `hook_z`, `hook_result`, `hook_resid_post`.
    pub const ACTIVATION: f32 = 1e-4;
}

/// The directory of TransformerLens fixtures (`scripts/make_fixtures.py` writes them).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tl")
}

/// Every fixture model directory, sorted by name.
pub fn fixture_models() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/tl exists (run scripts/make_fixtures.py)")
        .map(|e| e.expect("readable fixtures dir").path())
        .filter(|p| p.join("reference.safetensors").exists())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no fixtures found in {}",
        fixtures_dir().display()
    );
    dirs
}

/// A tensor read from a safetensors file, as f32 with its shape.
#[derive(Clone, Debug)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl Array {
    /// Elements of the sub-array at `index` along the first axis.
    pub fn row(&self, index: usize) -> &[f32] {
        let n: usize = self.shape[1..].iter().product();
        &self.data[index * n..(index + 1) * n]
    }
}

/// Reads every tensor of a safetensors file (F32 or I64) into f32 arrays by name.
pub fn read_safetensors(path: &Path) -> HashMap<String, Array> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::I64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (
                name,
                Array {
                    shape: view.shape().to_vec(),
                    data,
                },
            )
        })
        .collect()
}

/// The largest |a - b|, asserting equal lengths.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts `max |a - b| <= tol`, printing the name, the difference and the tolerance.
pub fn assert_close(name: &str, actual: &[f32], expected: &[f32], tol: f32) {
    let diff = max_abs_diff(actual, expected);
    assert!(
        diff <= tol,
        "{name}: max |actual - expected| = {diff:e} > tolerance {tol:e}"
    );
}
