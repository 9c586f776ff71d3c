//! Host tests of the kernel on small deterministic models: blob round trips, every load error,
//! decoding invariants, and attribution summing to the logits.

use tinylens::blob::{Blob, TensorKind, CRC32};
use tinylens::testing::{blob_for, tiny_config, values};
use tinylens::writer::{write_f32, AlignedBytes};
use tinylens::{Config, Decoder, Error, LnConvention, Model, Norm, PosEmbed, Target, Term};

const LN: Norm = Norm::LayerNorm { eps: 1e-5 };

fn all_configs() -> Vec<Config> {
    let mut out = Vec::new();
    for norm in [Norm::None, LN] {
        for pos in [PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None] {
            out.push(tiny_config(norm, pos));
        }
    }
    // One layer, and a model whose d_model differs from n_heads * d_head.
    out.push(Config {
        n_layers: 1,
        ..tiny_config(Norm::None, PosEmbed::Standard)
    });
    out.push(Config {
        n_heads: 3,
        d_head: 5,
        ..tiny_config(LN, PosEmbed::Standard)
    });
    out
}

fn run_all(cfg: &Config, tokens: &[u32]) -> Vec<Vec<f32>> {
    let blob = blob_for(cfg);
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let mut arena = vec![0.0; cfg.state_len()];
    let mut dec = Decoder::new(&model, &mut arena).unwrap();
    tokens
        .iter()
        .map(|&t| dec.step(t).unwrap().to_vec())
        .collect()
}

/// Rewrites the CRC trailer after an edit, so that the check under test is the one reached.
fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len();
    let crc = CRC32.checksum(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn blob_round_trip_lists_every_tensor() {
    for cfg in all_configs() {
        let blob = blob_for(&cfg);
        let parsed = Blob::parse(blob.as_bytes()).unwrap();
        assert_eq!(parsed.config, cfg);
        let listed: Vec<_> = parsed
            .entries()
            .map(|(id, e)| (id, e.len as usize))
            .collect();
        let expected: Vec<_> = tinylens::blob::tensors(&cfg).collect();
        assert_eq!(listed, expected);
        assert_eq!(parsed.len, blob.as_bytes().len());
    }
}

#[test]
fn vocab_round_trips() {
    let cfg = tiny_config(Norm::None, PosEmbed::Standard);
    let vocab: Vec<String> = (0..cfg.d_vocab).map(|i| format!("t{i}é")).collect();
    let data: Vec<Vec<f32>> = tinylens::blob::tensors(&cfg)
        .map(|(_, n)| values(3, n))
        .collect();
    let mut i = 0;
    let bytes = write_f32(&cfg, Some(&vocab), |_| {
        i += 1;
        &data[i - 1]
    })
    .unwrap();
    let aligned = AlignedBytes::new(&bytes);
    let model = Model::from_blob(aligned.as_bytes()).unwrap();
    let v = model.vocab().unwrap();
    assert_eq!(v.len(), cfg.d_vocab);
    assert_eq!(v.text(10), Some("t10é"));
    assert_eq!(v.text(11), None);
}

#[test]
fn incremental_decoding_equals_prefill() {
    let tokens = [3, 1, 4, 1, 5, 9];
    for cfg in all_configs() {
        let per_step = run_all(&cfg, &tokens);
        let blob = blob_for(&cfg);
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let mut arena = vec![0.0; cfg.state_len()];
        let mut dec = Decoder::new(&model, &mut arena).unwrap();
        for n in 1..=tokens.len() {
            dec.reset();
            let logits = dec.prefill(&tokens[..n]).unwrap();
            assert_eq!(logits, per_step[n - 1].as_slice(), "{cfg:?} prefix {n}");
        }
    }
}

#[test]
fn patterns_are_causal_distributions() {
    for cfg in all_configs() {
        let blob = blob_for(&cfg);
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let mut arena = vec![0.0; cfg.state_len()];
        let mut dec = Decoder::new(&model, &mut arena).unwrap();
        for (i, t) in [1u32, 2, 3, 4].into_iter().enumerate() {
            dec.step(t).unwrap();
            for l in 0..cfg.n_layers {
                for h in 0..cfg.n_heads {
                    let p = dec.pattern(l, h).unwrap();
                    assert_eq!(p.len(), i + 1);
                    let sum: f32 = p.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
                    assert!(p.iter().all(|&a| a >= 0.0));
                }
            }
        }
    }
}

#[test]
fn attribution_terms_sum_to_logits() {
    for cfg in all_configs() {
        let blob = blob_for(&cfg);
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let mut arena = vec![0.0; cfg.state_len()];
        let mut dec = Decoder::new(&model, &mut arena).unwrap();
        for t in [2u32, 7, 1, 0, 10] {
            let logits = dec.step(t).unwrap().to_vec();
            let n = Term::count(&cfg);
            let mut table = vec![0.0; n * cfg.d_vocab];
            dec.attribution_table(LnConvention::Exact, &mut table)
                .unwrap();
            for v in 0..cfg.d_vocab {
                let sum: f32 = (0..n).map(|k| table[k * cfg.d_vocab + v]).sum();
                assert!(
                    (sum - logits[v]).abs() < 1e-4,
                    "{cfg:?}: {sum} vs {}",
                    logits[v]
                );
            }
            // One token, and a difference, without the table: same numbers.
            let mut terms = vec![0.0; n];
            dec.attribute(Target::Token(4), LnConvention::Exact, &mut terms)
                .unwrap();
            for k in 0..n {
                assert!((terms[k] - table[k * cfg.d_vocab + 4]).abs() < 1e-4);
            }
            let total: f32 = terms.iter().sum();
            assert!((total - logits[4]).abs() < 1e-4);
            dec.attribute(Target::Diff(4, 6), LnConvention::Exact, &mut terms)
                .unwrap();
            let total: f32 = terms.iter().sum();
            assert!((total - (logits[4] - logits[6])).abs() < 1e-4);
            // The TransformerLens convention agrees with the table it defines.
            let mut tl = vec![0.0; n * cfg.d_vocab];
            dec.attribution_table(LnConvention::TransformerLens, &mut tl)
                .unwrap();
            dec.attribute(Target::Token(9), LnConvention::TransformerLens, &mut terms)
                .unwrap();
            for k in 0..n {
                assert!((terms[k] - tl[k * cfg.d_vocab + 9]).abs() < 1e-4);
            }
        }
        // Positional term is zero when positions are not in the residual stream.
        let pos_row = Term::nth(&cfg, 1).unwrap();
        assert_eq!(pos_row, Term::Pos);
    }
}

#[test]
fn hooks_see_results_that_add_up() {
    struct Sum {
        results: Vec<Vec<f32>>,
        resid: Vec<Vec<f32>>,
    }
    impl tinylens::Hooks for Sum {
        fn result(&mut self, _l: usize, _h: usize, r: &[f32]) {
            self.results.push(r.to_vec());
        }
        fn resid_post(&mut self, _l: usize, r: &[f32]) {
            self.resid.push(r.to_vec());
        }
    }
    let cfg = tiny_config(Norm::None, PosEmbed::None);
    let blob = blob_for(&cfg);
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let mut arena = vec![0.0; cfg.state_len()];
    let mut dec = Decoder::new(&model, &mut arena).unwrap();
    let mut hooks = Sum {
        results: vec![],
        resid: vec![],
    };
    dec.step_with(5, &mut hooks).unwrap();
    assert_eq!(hooks.results.len(), cfg.n_layers * cfg.n_heads);
    assert_eq!(hooks.resid.len(), cfg.n_layers);
    assert_eq!(hooks.resid.last().unwrap().as_slice(), dec.resid());
}

#[test]
fn bad_tokens_and_full_context_are_errors() {
    let cfg = tiny_config(LN, PosEmbed::Standard);
    let blob = blob_for(&cfg);
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let mut arena = vec![0.0; cfg.state_len()];
    let mut dec = Decoder::new(&model, &mut arena).unwrap();
    assert_eq!(
        dec.step(11),
        Err(Error::TokenOutOfRange {
            token: 11,
            d_vocab: 11
        })
    );
    assert_eq!(dec.prefill(&[]), Err(Error::EmptyPrompt));
    assert_eq!(
        dec.prefill(&[1, 2, 99]),
        Err(Error::TokenOutOfRange {
            token: 99,
            d_vocab: 11
        })
    );
    assert!(dec.is_empty(), "a rejected prompt changes nothing");
    assert_eq!(
        dec.prefill(&[1; 7]),
        Err(Error::ContextFull { capacity: 6 })
    );
    dec.prefill(&[1; 6]).unwrap();
    assert_eq!(dec.step(1), Err(Error::ContextFull { capacity: 6 }));
    // Sliding keeps going: the window re-encodes the newest tokens.
    let logits = dec.slide(&[1, 1, 1]).unwrap().to_vec();
    assert_eq!(dec.len(), 3);
    let mut arena2 = vec![0.0; cfg.state_len()];
    let mut fresh = Decoder::new(&model, &mut arena2).unwrap();
    assert_eq!(fresh.prefill(&[1, 1, 1]).unwrap(), logits.as_slice());
    assert_eq!(
        dec.pattern(2, 0),
        Err(Error::OutOfRange {
            what: "layer",
            index: 2,
            len: 2
        })
    );
    assert_eq!(
        dec.pattern(0, 2),
        Err(Error::OutOfRange {
            what: "head",
            index: 2,
            len: 2
        })
    );
    let mut terms = vec![0.0; 3];
    assert!(matches!(
        dec.attribute(Target::Token(0), LnConvention::Exact, &mut terms),
        Err(Error::OutputLength { .. })
    ));
}

#[test]
fn capacity_and_context_limits() {
    let cfg = tiny_config(Norm::None, PosEmbed::Standard);
    let blob = blob_for(&cfg);
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let mut small = vec![0.0; cfg.state_len() - 1];
    assert_eq!(
        Decoder::new(&model, &mut small).err(),
        Some(Error::CapacityTooSmall {
            needed_bytes: cfg.state_bytes(),
            available_bytes: cfg.state_bytes() - 4
        })
    );
    let mut arena = vec![0.0; cfg.state_len_for(3)];
    let mut dec = Decoder::with_context(&model, &mut arena, 3).unwrap();
    dec.prefill(&[1, 2, 3]).unwrap();
    assert_eq!(dec.step(4), Err(Error::ContextFull { capacity: 3 }));
    let mut arena = vec![0.0; cfg.state_len()];
    assert_eq!(
        Decoder::with_context(&model, &mut arena, 7).err(),
        Some(Error::ContextTooLong {
            requested: 7,
            n_ctx: 6
        })
    );
    // A static arena sized by the const fn.
    const CFG: Config = Config {
        n_layers: 2,
        n_heads: 2,
        d_model: 8,
        d_head: 4,
        d_vocab: 11,
        n_ctx: 6,
        norm: Norm::None,
        pos: PosEmbed::Standard,
    };
    let mut arena = Box::new(tinylens::Arena::<{ CFG.state_len() }>::new());
    assert!(Decoder::new(&model, arena.as_mut_slice()).is_ok());
}

#[test]
fn corrupted_blobs_are_rejected_with_the_right_error() {
    let cfg = tiny_config(LN, PosEmbed::Standard);
    let good = blob_for(&cfg).as_bytes().to_vec();
    let load = |b: &[u8]| Model::from_blob(AlignedBytes::new(b).as_bytes()).err();

    assert_eq!(
        load(&good[..10]),
        Some(Error::Truncated {
            expected: 24,
            found: 10
        })
    );
    assert_eq!(
        load(&good[..good.len() - 1]),
        Some(Error::Truncated {
            expected: good.len(),
            found: good.len() - 1
        })
    );
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(load(&long), Some(Error::TrailingBytes { .. })));
    let mut magic = good.clone();
    magic[0] = b'T';
    assert_eq!(load(&magic), Some(Error::BadMagic));
    let mut version = good.clone();
    version[8] = 2;
    assert_eq!(
        load(&version),
        Some(Error::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    );
    let mut flipped = good.clone();
    flipped[100] ^= 0x10;
    assert!(matches!(load(&flipped), Some(Error::Checksum { .. })));
    // Misaligned: the same bytes one past an aligned address.
    let shifted = AlignedBytes::new(&[&[0u8][..], &good].concat());
    assert!(matches!(
        Model::from_blob(&shifted.as_bytes()[1..]).err(),
        Some(Error::Misaligned { address_mod_4: 1 })
    ));
}

#[test]
fn every_single_bit_flip_is_detected() {
    let cfg = Config {
        n_layers: 1,
        n_heads: 1,
        d_model: 4,
        d_head: 2,
        d_vocab: 5,
        n_ctx: 3,
        ..tiny_config(LN, PosEmbed::Standard)
    };
    let good = blob_for(&cfg).as_bytes().to_vec();
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(load_err(&bad).is_some(), "flip of bit {bit} went unnoticed");
    }
    fn load_err(b: &[u8]) -> Option<Error> {
        Model::from_blob(AlignedBytes::new(b).as_bytes()).err()
    }
}

#[test]
fn inconsistent_blobs_name_the_tensor() {
    let cfg = tiny_config(Norm::None, PosEmbed::Standard);
    let data: Vec<Vec<f32>> = tinylens::blob::tensors(&cfg)
        .map(|(_, n)| values(1, n))
        .collect();
    let ids: Vec<_> = tinylens::blob::tensors(&cfg).map(|(id, _)| id).collect();
    // NaN in W_U.
    let mut nan = data.clone();
    let wu = ids.iter().position(|id| id.kind == TensorKind::WU).unwrap();
    nan[wu][7] = f32::NAN;
    let bytes = write_f32::<&str>(&cfg, None, |id| {
        &nan[ids.iter().position(|x| *x == id).unwrap()]
    })
    .unwrap();
    let err = Model::from_blob(AlignedBytes::new(&bytes).as_bytes())
        .err()
        .unwrap();
    assert_eq!(
        err,
        Error::NonFinite {
            tensor: ids[wu],
            index: 7
        }
    );
    assert_eq!(
        err.to_string(),
        "tensor unembed.W_U holds NaN or Inf at element 7"
    );
    // A writer given a tensor of the wrong length refuses.
    let err = write_f32::<&str>(&cfg, None, |id| {
        if id.kind == TensorKind::WQ {
            &data[0][..3]
        } else {
            &data[ids.iter().position(|x| *x == id).unwrap()]
        }
    })
    .unwrap_err();
    assert!(matches!(err, Error::TensorLength { found: 3, .. }), "{err}");
    // A header whose config says more layers than the directory has.
    let bytes = write_f32::<&str>(&cfg, None, |id| {
        &data[ids.iter().position(|x| *x == id).unwrap()]
    })
    .unwrap();
    let mut edited = bytes.clone();
    // The config is the first postcard field after the 20-byte prefix: n_layers is one varint byte.
    assert_eq!(edited[20], 2);
    edited[20] = 3;
    fix_crc(&mut edited);
    let err = Model::from_blob(AlignedBytes::new(&edited).as_bytes())
        .err()
        .unwrap();
    assert!(matches!(err, Error::TensorCount { .. }), "{err}");
    // Zero heads.
    let mut edited = bytes.clone();
    edited[21] = 0;
    fix_crc(&mut edited);
    let err = Model::from_blob(AlignedBytes::new(&edited).as_bytes())
        .err()
        .unwrap();
    assert_eq!(err, Error::BadConfig("n_heads must be at least 1"));
}

#[test]
fn blocked_matvec_equals_the_plain_one_exactly() {
    use tinylens::forward::{matvec, matvec_reference};
    for (rows, cols) in [(1, 1), (8, 4), (7, 9), (32, 8), (3, 13), (64, 128)] {
        let x = values(7, rows);
        let w = values(8, rows * cols);
        let b = values(9, cols);
        for bias in [None, Some(b.as_slice())] {
            let (mut fast, mut plain) = (vec![0.0; cols], vec![0.0; cols]);
            matvec(&x, &w, bias, &mut fast);
            matvec_reference(&x, &w, bias, &mut plain);
            assert_eq!(fast, plain, "{rows}x{cols}: same terms in the same order");
        }
    }
}

#[test]
fn hooks_can_replace_a_head_result_and_the_residual() {
    // Zeroing every head's result leaves resid_post = resid_pre + b_O: the layer's heads are
    // gone and nothing else moved.
    struct Zero {
        pre: Vec<Vec<f32>>,
        post: Vec<Vec<f32>>,
    }
    impl tinylens::Hooks for Zero {
        fn resid_pre(&mut self, _l: usize, r: &mut [f32]) {
            self.pre.push(r.to_vec());
        }
        fn patch_result(&mut self, _l: usize, _h: usize, r: &mut [f32]) {
            r.fill(0.0);
        }
        fn resid_post(&mut self, _l: usize, r: &[f32]) {
            self.post.push(r.to_vec());
        }
    }
    let cfg = tiny_config(Norm::None, PosEmbed::Standard);
    let blob = blob_for(&cfg);
    let model = Model::from_blob(blob.as_bytes()).unwrap();
    let b_o = match model.weights() {
        tinylens::model::Weights::F32(w) => w.layer(0).b_o.to_vec(),
        _ => unreachable!(),
    };
    let mut arena = vec![0.0; cfg.state_len()];
    let mut dec = Decoder::new(&model, &mut arena).unwrap();
    let mut hooks = Zero {
        pre: vec![],
        post: vec![],
    };
    dec.step_with(3, &mut hooks).unwrap();
    for (i, (&pre, &post)) in hooks.pre[0].iter().zip(&hooks.post[0]).enumerate() {
        assert!(
            (pre + b_o[i] - post).abs() < 1e-6,
            "dim {i}: {pre} + {} != {post}",
            b_o[i]
        );
    }
    // Replacing the residual entering layer 0 changes what every later step reads.
    struct Shift;
    impl tinylens::Hooks for Shift {
        fn resid_pre(&mut self, l: usize, r: &mut [f32]) {
            if l == 0 {
                r.iter_mut().for_each(|x| *x += 1.0);
            }
        }
    }
    dec.reset();
    let plain = dec.step(3).unwrap().to_vec();
    dec.reset();
    let shifted = dec.step_with(3, &mut Shift).unwrap().to_vec();
    assert_ne!(plain, shifted);
}

#[test]
fn rewinding_continues_as_if_the_later_positions_never_ran() {
    let (prefix, first, second) = ([3u32, 1, 4], [1u32, 5], [9u32, 2, 6]);
    for cfg in all_configs() {
        let blob = blob_for(&cfg);
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let mut arena = vec![0.0; cfg.state_len()];
        let mut dec = Decoder::new(&model, &mut arena).unwrap();
        let whole: Vec<u32> = prefix.iter().chain(&second).copied().collect();
        let fresh = dec.prefill(&whole).unwrap().to_vec();
        dec.reset();
        dec.prefill(&prefix).unwrap();
        dec.prefill(&first).unwrap();
        dec.rewind(prefix.len()).unwrap();
        assert_eq!(dec.len(), prefix.len());
        assert!(matches!(dec.logits(), Err(Error::NoPosition)), "{cfg:?}");
        let again = dec.prefill(&second).unwrap();
        assert_eq!(again, fresh.as_slice(), "{cfg:?}");
        // Past the decoded length there is nothing to rewind to.
        let err = dec.rewind(dec.len() + 1).unwrap_err();
        assert!(
            matches!(
                err,
                Error::OutOfRange {
                    what: "rewind length",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn hooks_are_told_each_position_and_can_replace_queries_keys_and_values() {
    use tinylens::{Hooks, Proj};
    struct Positions(Vec<usize>);
    impl Hooks for Positions {
        fn position(&mut self, pos: usize) {
            self.0.push(pos);
        }
    }
    // Zeroed values make every head's z, and so its result, zero: the same logits as
    // zeroing the results themselves.
    struct ZeroValues;
    impl Hooks for ZeroValues {
        fn patch_qkv(&mut self, _l: usize, _h: usize, which: Proj, x: &mut [f32]) {
            if which == Proj::V {
                x.fill(0.0);
            }
        }
    }
    struct ZeroResults;
    impl Hooks for ZeroResults {
        fn patch_result(&mut self, _l: usize, _h: usize, r: &mut [f32]) {
            r.fill(0.0);
        }
    }
    // Queries and keys change the pattern and nothing else: equal keys make it uniform.
    struct SameKeys;
    impl Hooks for SameKeys {
        fn patch_qkv(&mut self, _l: usize, _h: usize, which: Proj, x: &mut [f32]) {
            if which == Proj::K {
                x.fill(0.5);
            }
        }
    }
    let tokens = [3u32, 1, 4, 1];
    for cfg in all_configs() {
        let blob = blob_for(&cfg);
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let mut arena = vec![0.0; cfg.state_len()];
        let mut dec = Decoder::new(&model, &mut arena).unwrap();
        dec.prefill(&tokens[..1]).unwrap();
        let mut seen = Positions(vec![]);
        dec.prefill_with(&tokens[1..], &mut seen).unwrap();
        assert_eq!(seen.0, vec![1, 2, 3], "{cfg:?}");
        dec.reset();
        let no_values = dec.prefill_with(&tokens, &mut ZeroValues).unwrap().to_vec();
        dec.reset();
        let no_results = dec
            .prefill_with(&tokens, &mut ZeroResults)
            .unwrap()
            .to_vec();
        for (a, b) in no_values.iter().zip(&no_results) {
            assert!((a - b).abs() < 1e-5, "{cfg:?}: {a} vs {b}");
        }
        dec.reset();
        dec.prefill_with(&tokens, &mut SameKeys).unwrap();
        for l in 0..cfg.n_layers {
            for h in 0..cfg.n_heads {
                for &w in dec.pattern(l, h).unwrap() {
                    assert!((w - 0.25).abs() < 1e-6, "{cfg:?} head {l}.{h}: {w}");
                }
            }
        }
    }
}
