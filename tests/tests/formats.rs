//! The quantized formats end to end on the TransformerLens fixtures: decoding invariants of
//! the `i8`, `i8-block32` and `int` decoders, attribution, and the errors of bad blobs and bad
//! calibration.

use tinylens::blob::CRC32;
use tinylens::writer::AlignedBytes;
use tinylens::{Decoder, Error, IntDecoder, LnConvention, Model, NumberFormat, Target, Term};
use tinylens_cli::import::load_checkpoint;
use tinylens_cli::inputs::random_sequences;
use tinylens_cli::params::Params;
use tinylens_cli::quantize::{calibrate, quantize_params};

fn params(name: &str) -> Params {
    let dir = tinylens_tests::fixtures_dir().join(name);
    load_checkpoint(&dir.join("model.safetensors"), None).unwrap()
}

fn blob(params: &Params, format: NumberFormat) -> AlignedBytes {
    AlignedBytes::new(&quantize_params(params, format, None).unwrap())
}

const FIXTURES: [&str; 3] = ["l2_ln", "l1_nonorm", "l2_shortformer_ln"];

#[test]
fn i8_formats_decode_incrementally_and_attribute_exactly() {
    for name in FIXTURES {
        let p = params(name);
        for format in [NumberFormat::I8, NumberFormat::I8Block32] {
            let b = blob(&p, format);
            let model = Model::from_blob(b.as_bytes()).unwrap();
            assert_eq!(model.format(), format);
            let cfg = *model.config();
            let tokens = &random_sequences(1, cfg.n_ctx, cfg.d_vocab, 3)[0];
            let mut arena = vec![0.0; cfg.state_len()];
            let mut dec = Decoder::new(&model, &mut arena).unwrap();
            let prefill = dec.prefill(tokens).unwrap().to_vec();
            dec.reset();
            for &t in tokens {
                dec.step(t).unwrap();
            }
            let stepped = dec.logits().unwrap().to_vec();
            for (a, b) in prefill.iter().zip(&stepped) {
                assert!((a - b).abs() < 1e-5, "{name} {format:?}: {a} vs {b}");
            }
            let target = tinylens::argmax(&stepped);
            let mut terms = vec![0.0; Term::count(&cfg)];
            dec.attribute(Target::Token(target), LnConvention::Exact, &mut terms)
                .unwrap();
            let sum: f32 = terms.iter().sum();
            let logit = stepped[target as usize];
            assert!(
                (sum - logit).abs() < 1e-4,
                "{name} {format:?}: terms sum to {sum}, logit {logit}"
            );
        }
    }
}

#[test]
fn int_decoder_is_deterministic_and_attributes_in_integers() {
    for name in FIXTURES {
        let p = params(name);
        let b = blob(&p, NumberFormat::Int);
        let model = Model::from_blob(b.as_bytes()).unwrap();
        let cfg = *model.config();
        let tokens = &random_sequences(1, cfg.n_ctx, cfg.d_vocab, 5)[0];
        let mut arena = vec![0i32; cfg.int_state_len()];
        let mut dec = IntDecoder::new(&model, &mut arena).unwrap();
        let prefill = dec.prefill(tokens).unwrap().to_vec();
        dec.reset();
        for &t in tokens {
            dec.step(t).unwrap();
        }
        // Bit-exact: prefill and step are the same integer computation.
        assert_eq!(prefill, dec.logits().unwrap());
        // Patterns are Q15 distributions over the causal prefix.
        for l in 0..cfg.n_layers {
            for h in 0..cfg.n_heads {
                let row = dec.pattern(l, h).unwrap();
                assert_eq!(row.len(), tokens.len());
                let sum: u32 = row.iter().map(|&p| p as u32).sum();
                assert!(
                    sum.abs_diff(32768) <= row.len() as u32,
                    "{name}: pattern sums to {sum}"
                );
            }
        }
        // Attribution terms add up to the logit, up to the rounding of each term.
        let target = prefill
            .iter()
            .enumerate()
            .max_by_key(|(_, &v)| v)
            .unwrap()
            .0 as u32;
        let mut terms = vec![0i32; Term::count(&cfg)];
        dec.attribute(Target::Token(target), LnConvention::Exact, &mut terms)
            .unwrap();
        let sum: i64 = terms.iter().map(|&t| t as i64).sum();
        let logit = prefill[target as usize] as i64;
        assert!(
            (sum - logit).abs() < 65536 / 20,
            "{name}: terms sum to {sum}, logit {logit}"
        );
        // The table agrees with the single-target attribution.
        let mut table = vec![0i32; Term::count(&cfg) * cfg.d_vocab];
        dec.attribution_table(LnConvention::Exact, &mut table)
            .unwrap();
        for (k, &t) in terms.iter().enumerate() {
            assert_eq!(
                table[k * cfg.d_vocab + target as usize],
                t,
                "{name}: term {k}"
            );
        }
    }
}

#[test]
fn int_decoder_errors() {
    let p = params("l2_ln");
    let b = blob(&p, NumberFormat::Int);
    let model = Model::from_blob(b.as_bytes()).unwrap();
    let cfg = *model.config();
    let mut small = vec![0i32; cfg.int_state_len() - 1];
    assert!(matches!(
        IntDecoder::new(&model, &mut small),
        Err(Error::CapacityTooSmall { .. })
    ));
    let mut arena = vec![0i32; cfg.int_state_len_for(2)];
    let mut dec = IntDecoder::with_context(&model, &mut arena, 2).unwrap();
    assert!(matches!(
        dec.step(cfg.d_vocab as u32),
        Err(Error::TokenOutOfRange { .. })
    ));
    dec.prefill(&[1, 2]).unwrap();
    assert_eq!(
        dec.step(3),
        Err(Error::ContextFull { capacity: 2 }).map(|_: ()| &[][..])
    );
    let mut terms = vec![0i32; Term::count(&cfg)];
    assert!(dec
        .attribute(Target::Token(1), LnConvention::TransformerLens, &mut terms)
        .is_err());
    // Each decoder runs its own formats.
    let mut f32_arena = vec![0.0; cfg.state_len()];
    assert_eq!(
        Decoder::new(&model, &mut f32_arena).err(),
        Some(Error::UnsupportedFormat(2))
    );
    let f32_blob = blob(&p, NumberFormat::F32);
    let f32_model = Model::from_blob(f32_blob.as_bytes()).unwrap();
    let mut arena = vec![0i32; cfg.int_state_len()];
    assert_eq!(
        IntDecoder::new(&f32_model, &mut arena).err(),
        Some(Error::UnsupportedFormat(0))
    );
}

#[test]
fn a_bad_shift_in_an_int_blob_names_the_record() {
    let p = params("l2_ln");
    let mut bytes = quantize_params(&p, NumberFormat::Int, None).unwrap();
    let good = AlignedBytes::new(&bytes);
    let model = Model::from_blob(good.as_bytes()).unwrap();
    let (_, entry) = model
        .blob()
        .entries()
        .find(|(id, _)| id.to_string() == "blocks.1.quant")
        .unwrap();
    let data_start = bytes.len() - 4 - model.blob().data.len();
    // The shift of the first pair: word 1 of the record.
    let at = data_start + entry.offset as usize + 4;
    bytes[at..at + 4].copy_from_slice(&40i32.to_le_bytes());
    let n = bytes.len();
    let crc = CRC32.checksum(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    let bad = AlignedBytes::new(&bytes);
    let err = Model::from_blob(bad.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor blocks.1.quant has an invalid multiplier/shift pair at element 0"
    );
}

#[test]
fn bad_calibration_and_overflowing_scales_are_named() {
    let p = params("l1_nonorm");
    let err = calibrate(&p, &[vec![1, 2, 99]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "calibration sequence 1 has token 99, out of range (d_vocab = 40)"
    );
    let err = calibrate(&p, &[vec![1; 25]]).unwrap_err();
    assert!(err.to_string().contains("needs 1 to n_ctx = 24"), "{err}");
    let mut huge = p.clone();
    huge.b_u[3] = 1e9;
    let err = quantize_params(&huge, NumberFormat::Int, None).unwrap_err();
    assert!(err.to_string().starts_with("unembed.b_U: value"), "{err}");
}

#[test]
fn corrupted_int_weights_never_panic() {
    // Any bytes that pass the checks (CRC fixed up) decode without a panic: integer overflow
    // wraps or saturates, by design, and every slice is bounded by the checked directory.
    let p = params("l2_ln");
    let good = quantize_params(&p, NumberFormat::Int, None).unwrap();
    let mut state = 0x1234_5678u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for _ in 0..200 {
        let mut bytes = good.clone();
        let n = bytes.len();
        for _ in 0..8 {
            let at = 512 + next() as usize % (n - 516);
            bytes[at] = next() as u8;
        }
        let crc = CRC32.checksum(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
        let aligned = AlignedBytes::new(&bytes);
        let Ok(model) = Model::from_blob(aligned.as_bytes()) else {
            continue;
        };
        let cfg = *model.config();
        let mut arena = vec![0i32; cfg.int_state_len()];
        let mut dec = IntDecoder::new(&model, &mut arena).unwrap();
        dec.prefill(&[1, 2, 3, 1, 2, 3]).unwrap();
        let mut table = vec![0i32; Term::count(&cfg) * cfg.d_vocab];
        dec.attribution_table(LnConvention::Exact, &mut table)
            .unwrap();
    }
}
