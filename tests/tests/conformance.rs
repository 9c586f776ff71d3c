//! The kernel against TransformerLens: every fixture model that `scripts/make_fixtures.py`
//! generated with TransformerLens, imported from its safetensors checkpoint (F32, F16 or BF16),
//! written to a blob, and run token by token through the KV cache. Every hook and every
//! attribution term must match TransformerLens' own numbers.

use tinylens::{Model, Norm};
use tinylens_cli::blobio::blob_from_params;
use tinylens_cli::import::load_checkpoint;
use tinylens_cli::trace::trace;
use tinylens_tests::{assert_close, fixture_models, read_safetensors, tolerance};

#[test]
fn kernel_matches_transformer_lens_on_every_fixture() {
    for dir in fixture_models() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let params = load_checkpoint(&dir.join("model.safetensors"), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let blob = tinylens::writer::AlignedBytes::new(&blob_from_params(&params).unwrap());
        let model = Model::from_blob(blob.as_bytes()).unwrap();
        let cfg = *model.config();
        let reference = read_safetensors(&dir.join("reference.safetensors"));
        let get = |key: &str| {
            reference
                .get(key)
                .unwrap_or_else(|| panic!("{name}: reference lacks {key}"))
        };
        let tokens = get("tokens");
        let (batch, seq) = (tokens.shape[0], tokens.shape[1]);
        let v = cfg.d_vocab;
        let (l, h) = (cfg.n_layers, cfg.n_heads);
        for b in 0..batch {
            let ids: Vec<u32> = tokens.row(b).iter().map(|&t| t as u32).collect();
            let t = trace(&model, &ids).unwrap();
            let at = |what: &str| format!("{name} row {b} {what}");
            assert_close(
                &at("logits"),
                &t.logits,
                get("logits").row(b),
                tolerance::LOGIT,
            );
            for layer in 0..l {
                let key = |hook: &str| format!("blocks.{layer}.{hook}");
                assert_close(
                    &at(&key("attn.hook_pattern")),
                    &t.pattern[layer],
                    get(&key("attn.hook_pattern")).row(b),
                    tolerance::PATTERN,
                );
                for (hook, ours) in [
                    ("attn.hook_z", &t.z[layer]),
                    ("attn.hook_result", &t.result[layer]),
                    ("hook_resid_post", &t.resid_post[layer]),
                ] {
                    assert_close(
                        &at(&key(hook)),
                        ours,
                        get(&key(hook)).row(b),
                        tolerance::ACTIVATION,
                    );
                }
            }
            for (key, ours) in [
                ("dla.direct_embed", &t.dla_direct_embed),
                ("dla.direct_pos", &t.dla_direct_pos),
                ("dla.direct", &t.dla_direct()),
            ] {
                assert_close(&at(key), ours, get(key).row(b), tolerance::LOGIT);
            }
            // The constant does not depend on the position: compare it at every position.
            let bias_const = get("dla.bias_const").row(b);
            for p in 0..seq {
                assert_close(
                    &at(&format!("dla.bias_const pos {p}")),
                    &t.dla_bias_const,
                    &bias_const[p * v..(p + 1) * v],
                    tolerance::LOGIT,
                );
            }
            // Stacked terms are [terms, batch, seq, d_vocab] in the reference.
            let stacked = |key: &str, n: usize, ours: &[f32]| {
                let theirs = get(key);
                for k in 0..n {
                    let row = &theirs.data[((k * batch) + b) * seq * v..][..seq * v];
                    assert_close(
                        &at(&format!("{key}[{k}]")),
                        &ours[k * seq * v..][..seq * v],
                        row,
                        tolerance::LOGIT,
                    );
                }
            };
            stacked("dla.heads", l * h, &t.dla_heads);
            stacked("dla.bias_b_O", l, &t.dla_bias_b_o);
            match cfg.norm {
                Norm::LayerNorm { .. } => stacked(
                    "dla.heads_tl",
                    l * h,
                    t.dla_heads_tl.as_ref().expect("LN model"),
                ),
                Norm::None => assert!(t.dla_heads_tl.is_none()),
            }
        }
        eprintln!("{name}: {batch} sequences of {seq} tokens match TransformerLens");
    }
}

#[test]
fn fixtures_cover_the_promised_variants() {
    let names: Vec<String> = fixture_models()
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    let mut variants = (false, false, false, false, false, false);
    for dir in fixture_models() {
        let p = load_checkpoint(&dir.join("model.safetensors"), None).unwrap();
        variants.0 |= p.config.n_layers == 1;
        variants.1 |= p.config.n_layers >= 2;
        variants.2 |= matches!(p.config.norm, Norm::LayerNorm { .. });
        variants.3 |= p.config.norm == Norm::None;
        variants.4 |= p.config.pos == tinylens::PosEmbed::Shortformer;
        let raw = std::fs::read(dir.join("model.safetensors")).unwrap();
        variants.5 |= safetensors::SafeTensors::deserialize(&raw)
            .unwrap()
            .tensors()
            .iter()
            .any(|(_, t)| t.dtype() == safetensors::Dtype::F16);
    }
    assert_eq!(
        variants,
        (true, true, true, true, true, true),
        "fixtures: {names:?}"
    );
}
