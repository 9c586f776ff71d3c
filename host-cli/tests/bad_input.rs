//! The README's "Bad input" table, row by row: each input and the exact text the user sees
//! (the kernel's rows as its `Error` displays them; the CLI's as `tinylens` prints them).
//! `cli.rs` checks the rows it shares with the other end-to-end tests.

mod common;

use std::path::Path;

use common::*;
use tinylens::blob::CRC32;
use tinylens::testing::{blob_for, tiny_config};
use tinylens::writer::AlignedBytes;
use tinylens::{Config, Decoder, Error, Model, Norm, PosEmbed};

fn load(bytes: &[u8]) -> String {
    Model::from_blob(AlignedBytes::new(bytes).as_bytes())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len();
    let crc = CRC32.checksum(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn kernel_rows() {
    // The l2_ln fixture's shape: d_vocab 40, n_ctx 24, 2 layers.
    let ln = Norm::LayerNorm { eps: 1e-5 };
    let cfg = Config {
        n_layers: 2,
        n_heads: 4,
        d_model: 32,
        d_head: 8,
        d_vocab: 40,
        n_ctx: 24,
        norm: ln,
        pos: PosEmbed::Standard,
    };
    let good = blob_for(&cfg).as_bytes().to_vec();
    let model_bytes = AlignedBytes::new(&good);
    let model = Model::from_blob(model_bytes.as_bytes()).unwrap();

    // (token id >= d_vocab: the CLI's wording, in `cli_rows`; the kernel's `Error` says
    // "token 40 is out of range (d_vocab = 40)".)
    let mut arena = vec![0.0; cfg.state_len()];
    let mut dec = Decoder::new(&model, &mut arena).unwrap();
    // empty prompt
    assert_eq!(
        dec.prefill(&[]).unwrap_err().to_string(),
        "the prompt has no tokens"
    );
    // state buffer smaller than the config needs
    let small = tiny_config(ln, PosEmbed::Standard);
    let small_blob = blob_for(&small);
    let small_model = Model::from_blob(small_blob.as_bytes()).unwrap();
    let mut short = vec![0.0; small.state_len() - 1];
    assert_eq!(
        Decoder::new(&small_model, &mut short)
            .err()
            .unwrap()
            .to_string(),
        format!(
            "model needs {} bytes of state, the buffer has {}",
            small.state_bytes(),
            small.state_bytes() - 4
        )
    );
    // truncated blob
    assert_eq!(
        load(&good[..good.len() / 2]),
        format!(
            "blob truncated: expected {} bytes, found {}",
            good.len(),
            good.len() / 2
        )
    );
    // wrong magic
    let mut magic = good.clone();
    magic[0] = b'T';
    assert_eq!(
        load(&magic),
        "not a tinylens blob (bad magic, expected \"tinylens\")"
    );
    // future format version
    let mut future = good.clone();
    future[8] = 9;
    assert_eq!(
        load(&future),
        "blob format version 9 is not supported (this kernel reads version 1)"
    );
    // flipped bit
    let mut flipped = good.clone();
    flipped[200] ^= 1;
    assert!(load(&flipped).starts_with("blob corrupted: CRC32 mismatch (stored 0x"));
    // config inconsistent with the tensor directory: one layer more in the header than the
    // directory lists (the header's first byte after the prefix is n_layers, a varint).
    let mut inconsistent = good.clone();
    assert_eq!(inconsistent[20], 2);
    inconsistent[20] = 3;
    fix_crc(&mut inconsistent);
    assert_eq!(
        load(&inconsistent),
        "tensor directory has 26 entries, the config requires 36"
    );
    // NaN or Inf weight (blob)
    let nan_blob = {
        let mut b = good.clone();
        let bytes = AlignedBytes::new(&b);
        let m = Model::from_blob(bytes.as_bytes()).unwrap();
        let (id, entry) = m
            .blob()
            .entries()
            .find(|(id, _)| id.to_string() == "unembed.W_U")
            .unwrap();
        assert_eq!(id.to_string(), "unembed.W_U");
        let data_start = good.len() - 4 - m.blob().data.len();
        let at = data_start + entry.offset as usize + 7 * 4;
        b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        fix_crc(&mut b);
        b
    };
    assert_eq!(
        load(&nan_blob),
        "tensor unembed.W_U holds NaN or Inf at element 7"
    );
    // misaligned blob in memory
    let shifted = AlignedBytes::new(&[&[0u8][..], &good].concat());
    assert_eq!(
        Model::from_blob(&shifted.as_bytes()[1..])
            .err()
            .unwrap()
            .to_string(),
        "blob is not 4-byte aligned (address % 4 = 1); embed it with include_blob! or copy it \
         to an aligned buffer"
    );
    let _ = Error::EmptyPrompt;
}

#[test]
fn cli_rows() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    let out = tmp("never.tlb");
    let out = out.to_str().unwrap();
    fails_with(
        &["run", ckpt, "--tokens", "1,2,40"],
        "token 40 is out of range: the model has d_vocab = 40",
    );
    fails_with(
        &["run", ckpt, "--tokens", "1,x"],
        "\"x\" in --tokens is not a token id",
    );
    fails_with(
        &["run", ckpt, "--prompt", &"a".repeat(25)],
        "the prompt is 25 tokens long, longer than the model's context n_ctx = 24",
    );
    fails_with(
        &["run", ckpt, "--prompt", "hello!"],
        "the prompt has '!' at byte 5, which is not in the model's vocabulary of 40 tokens",
    );
    fails_with(&["run", ckpt, "--prompt", ""], "the prompt has no tokens");
    // Unreadable files: a blob or checkpoint, a config, a calibration file, a directory, and
    // an output that cannot be written.
    fails_with(
        &["run", "/nonexistent/model.tlb", "--tokens", "1"],
        "cannot read /nonexistent/model.tlb: No such file or directory (os error 2)",
    );
    fails_with(
        &[
            "quantize",
            ckpt,
            "-o",
            out,
            "--config",
            "/nonexistent/config.json",
        ],
        "cannot read /nonexistent/config.json: No such file or directory (os error 2)",
    );
    fails_with(
        &[
            "quantize",
            ckpt,
            "-o",
            out,
            "--format",
            "int",
            "--calibrate",
            "/nonexistent/c.txt",
        ],
        "cannot read /nonexistent/c.txt: No such file or directory (os error 2)",
    );
    let dir = std::env::temp_dir();
    let dir = dir.to_str().unwrap();
    fails_with(
        &["inspect", dir],
        &format!("cannot read {dir}: Is a directory (os error 21)"),
    );
    fails_with(
        &["quantize", ckpt, "-o", "/nonexistent/dir/model.tlb"],
        "cannot write /nonexistent/dir/model.tlb: No such file or directory (os error 2)",
    );
    assert!(!Path::new(out).exists(), "a failed quantize writes nothing");
}

#[test]
fn checkpoint_rows() {
    use tinylens_cli::import::load_checkpoint_bytes;
    let dir = fixture("l1_nonorm");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    // An extra tensor, written to disk beside the config as `tinylens quantize` finds it.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = st.tensors();
    let zeros = [0u8; 8];
    let extra = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &zeros);
    tensors.push(("blocks.0.attn.W_X".into(), extra.unwrap()));
    let extra_dir = tmp("extra");
    std::fs::create_dir_all(&extra_dir).unwrap();
    std::fs::write(extra_dir.join("config.json"), &config).unwrap();
    let extra = extra_dir.join("model.safetensors");
    safetensors::serialize_to_file(tensors, None, &extra).unwrap();
    let out = tmp("never-extra.tlb");
    fails_with(
        &[
            "quantize",
            extra.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "unexpected tensor blocks.0.attn.W_X: not a parameter of a TransformerLens \
         attention-only model",
    );
    // Calibration overflow: activations so large that a scale leaves the fixed-point range.
    let mut p = load_checkpoint_bytes(&bytes, Some(&config), None).unwrap();
    p.w_e.iter_mut().for_each(|v| *v *= 1e15);
    let err = tinylens_cli::quantize::quantize_params(&p, tinylens::NumberFormat::Int, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("blocks.0.attn softmax scale of head 0: scale ")
            && err.ends_with(
                " overflows the fixed-point range (multiplier * 2^shift with shift <= 30)"
            ),
        "{err}"
    );
}
