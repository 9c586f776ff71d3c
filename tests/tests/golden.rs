//! Golden outputs of the full-integer path: the committed `int` blobs in `fixtures/golden/`,
//! run on the host, must give exactly the committed logits and attribution, bit for bit. The
//! firmware tests run the same blobs on Cortex-M and RISC-V and compare with the same files.
//!
//! `TINYLENS_BLESS_GOLDEN=1 cargo test -p tinylens-tests --test golden` rewrites them (after a
//! deliberate change of the quantizer or of the integer kernel).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tinylens::blob::CRC32;
use tinylens::writer::AlignedBytes;
use tinylens::{IntDecoder, LnConvention, Model, NumberFormat, Target, Term};
use tinylens_cli::import::load_checkpoint;
use tinylens_cli::inputs::random_sequences;
use tinylens_cli::quantize::quantize_params;

/// The fixtures that get golden files: LayerNorm, no norm, shortformer positions.
const MODELS: [&str; 3] = ["l2_ln", "l1_nonorm", "l2_shortformer_ln"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden")
}

/// `n_ctx` tokens: a random half, then the same half again (induction-style).
fn golden_tokens(n_ctx: usize, d_vocab: usize) -> Vec<u32> {
    let half = random_sequences(1, n_ctx / 2, d_vocab, 0x601D).remove(0);
    let mut tokens = half.clone();
    tokens.extend(&half);
    tokens
}

fn crc_of_i32(values: &[i32]) -> u32 {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    CRC32.checksum(&bytes)
}

/// What the host computes from a blob: the golden record (without file names).
fn run(blob: &[u8], name: &str) -> Value {
    let aligned = AlignedBytes::new(blob);
    let model = Model::from_blob(aligned.as_bytes()).unwrap();
    assert_eq!(model.format(), NumberFormat::Int);
    let cfg = *model.config();
    let tokens = golden_tokens(cfg.n_ctx, cfg.d_vocab);
    let mut arena = vec![0i32; cfg.int_state_len()];
    let mut dec = IntDecoder::new(&model, &mut arena).unwrap();
    let (mut crcs, mut argmax) = (Vec::new(), Vec::new());
    for &t in &tokens {
        let logits = dec.step(t).unwrap();
        crcs.push(crc_of_i32(logits));
        let best = (0..logits.len())
            .max_by_key(|&i| (logits[i], std::cmp::Reverse(i)))
            .unwrap();
        argmax.push(best);
    }
    let last = dec.logits().unwrap().to_vec();
    let target = *argmax.last().unwrap() as u32;
    let mut terms = vec![0i32; Term::count(&cfg)];
    dec.attribute(Target::Token(target), LnConvention::Exact, &mut terms)
        .unwrap();
    json!({
        "model": name,
        "blob": format!("{name}.int.tlb"),
        "blob_bytes": blob.len(),
        "blob_crc32": CRC32.checksum(&blob[..blob.len() - 4]),
        "logit_frac_bits": tinylens::forward_int::LOGIT_FRAC_BITS,
        "tokens": tokens,
        "logits_crc32": crcs,
        "argmax": argmax,
        "last_logits": last,
        "attribution_target": target,
        "attribution": terms,
    })
}

fn quantized(name: &str) -> Vec<u8> {
    let dir = tinylens_tests::fixtures_dir().join(name);
    let params = load_checkpoint(&dir.join("model.safetensors"), None).unwrap();
    quantize_params(&params, NumberFormat::Int, None).unwrap()
}

#[test]
fn int_blobs_reproduce_the_golden_outputs_bit_for_bit() {
    let bless = std::env::var_os("TINYLENS_BLESS_GOLDEN").is_some();
    for name in MODELS {
        let blob_path = golden_dir().join(format!("{name}.int.tlb"));
        let json_path = golden_dir().join(format!("{name}.int.json"));
        if bless {
            let blob = quantized(name);
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&blob_path, &blob).unwrap();
            let record = run(&blob, name);
            std::fs::write(
                &json_path,
                serde_json::to_string_pretty(&record).unwrap() + "\n",
            )
            .unwrap();
        }
        let blob = std::fs::read(&blob_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (bless with TINYLENS_BLESS_GOLDEN=1)",
                blob_path.display()
            )
        });
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        let actual = run(&blob, name);
        for key in [
            "blob_crc32",
            "tokens",
            "logits_crc32",
            "argmax",
            "last_logits",
            "attribution",
        ] {
            assert_eq!(
                actual[key],
                expected[key],
                "{name}: {key} differs from {}",
                json_path.display()
            );
        }
    }
}

#[test]
fn the_quantizer_is_deterministic() {
    // The committed blobs are what `tinylens quantize --format int` writes today.
    for name in MODELS {
        let committed = std::fs::read(golden_dir().join(format!("{name}.int.tlb"))).unwrap();
        assert!(
            quantized(name) == committed,
            "{name}: re-quantizing gives another blob"
        );
    }
}
