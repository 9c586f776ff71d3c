//! `tinylens generate` (greedy, sampled, sliding past the context) and `tinylens lens` (the
//! logit lens), run as the binary and checked against the library.

mod common;
use common::*;

use tinylens_cli::blobio::load_model;
use tinylens_cli::commands::demo::DEMO_PROMPT;
use tinylens_cli::commands::lens::{
    accumulated_resid, last_stage_difference, logit_lens, rank_of, Scale, LAST_STAGE_TOLERANCE,
};
use tinylens_cli::reference::Reference;
use tinylens_cli::trace::{trace_for, Attribution, Trace};

/// The embedded demo model's file.
fn demo_blob() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo.tlb").to_string()
}

/// The l2_ln checkpoint: LayerNorm, standard positions, n_ctx 24, a 40-letter vocabulary.
fn l2_ln() -> String {
    fixture("l2_ln")
        .join("model.safetensors")
        .to_str()
        .unwrap()
        .to_string()
}

/// The last line of `generate`'s output, `(N tokens, S slides)`, as numbers.
fn counts(out: &str) -> (usize, usize) {
    let last = out.lines().last().expect("a summary line");
    let inner = last
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(" slides)"))
        .unwrap_or_else(|| panic!("summary line: {last:?}"));
    let (n, s) = inner.split_once(" tokens, ").expect("N tokens, S slides");
    (n.parse().unwrap(), s.parse().unwrap())
}

/// The generated text: everything before the summary line, with the prompt cut off.
fn new_text<'a>(out: &'a str, prompt: &str) -> &'a str {
    let body = out.rsplit_once("\n(").expect("a summary line").0;
    body.strip_prefix(prompt)
        .unwrap_or_else(|| panic!("output does not start with the prompt: {body:?}"))
}

#[test]
fn greedy_generation_is_the_demo_continuation() {
    let demo = ok(&["demo"]);
    let line = demo
        .lines()
        .find(|l| l.starts_with("greedy continuation (8 steps"))
        .expect("the demo's continuation line");
    let expected = line.rsplit_once(" + ").unwrap().1;
    let out = ok(&["generate", &demo_blob(), "--prompt", DEMO_PROMPT, "-n", "8"]);
    let text = new_text(&out, DEMO_PROMPT);
    assert_eq!(format!("{text:?}"), expected, "{out}");
    assert_eq!(counts(&out), (8, 0));
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let run = |seed: &str| {
        ok(&[
            "generate",
            &demo_blob(),
            "--prompt",
            "Mr and Mrs Dura",
            "-n",
            "40",
            "--temperature",
            "1.0",
            "--top-k",
            "10",
            "--seed",
            seed,
        ])
    };
    let (a, again, b) = (run("1"), run("1"), run("2"));
    assert_eq!(a, again);
    assert_ne!(a, b);
    assert_eq!(counts(&a), (40, 0));
    let greedy = ok(&[
        "generate",
        &demo_blob(),
        "--prompt",
        "Mr and Mrs Dura",
        "-n",
        "40",
    ]);
    assert_ne!(a, greedy, "temperature 1 should leave the greedy path");
}

#[test]
fn generation_past_the_context_slides_and_goes_on() {
    // n_ctx 24: the 4-token prompt and the first 20 new tokens fill the cache; each slide keeps
    // 13, so it fills again 12 new tokens later: slides at new tokens 21, 33, 45 and 57.
    let o = tinylens(&["generate", &l2_ln(), "--prompt", "abcd", "-n", "60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(counts(&out), (60, 4), "{out}");
    assert_eq!(new_text(&out, "abcd").chars().count(), 60, "{out}");
    let err = stderr(&o);
    assert_eq!(err.matches("sliding the window").count(), 1, "{err}");
    assert!(err.contains("newest 13 tokens"), "{err}");
}

#[test]
fn int_and_i8_blobs_generate() {
    let int = fixture("../golden/l2_ln.int.tlb");
    let int = int.to_str().unwrap();
    let out = ok(&["generate", int, "--tokens", "1,2,3", "-n", "30"]);
    assert_eq!(counts(&out), (30, 1), "{out}");
    let sampled = ok(&[
        "generate",
        int,
        "--tokens",
        "1,2,3",
        "-n",
        "30",
        "--temperature",
        "0.7",
        "--seed",
        "3",
    ]);
    assert_eq!(counts(&sampled), (30, 1), "{sampled}");
    let i8 = tmp("l2_ln.i8.tlb");
    let i8 = i8.to_str().unwrap();
    ok(&["quantize", &l2_ln(), "-o", i8, "--format", "i8"]);
    let out = ok(&["generate", i8, "--prompt", "abc", "-n", "5"]);
    assert_eq!(new_text(&out, "abc").chars().count(), 5, "{out}");
}

#[test]
fn without_a_vocabulary_ids_are_printed() {
    let ckpt = fixture("l2_ln").join("model.safetensors");
    let cfg = fixture("l2_ln").join("config.json");
    let plain = tmp("l2_ln_novocab.safetensors");
    std::fs::copy(&ckpt, &plain).unwrap();
    let (plain, cfg) = (plain.to_str().unwrap(), cfg.to_str().unwrap());
    let out = ok(&[
        "generate", plain, "--config", cfg, "--tokens", "1,2,3", "-n", "4",
    ]);
    let first = out.lines().next().unwrap();
    let (prompt, new) = first.split_once(" | ").expect("prompt | new ids");
    assert_eq!(prompt, "1 2 3");
    let ids: Vec<u32> = new.split(' ').map(|s| s.parse().unwrap()).collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|&i| i < 40), "{ids:?}");
}

#[test]
fn bad_generate_flags_are_named() {
    let m = l2_ln();
    let base = ["generate", m.as_str(), "--tokens", "1,2"];
    let cases: [(&[&str], &str); 7] = [
        (&["-n", "0"], "-n 0: expected 1 to 100000"),
        (&["-n", "100001"], "-n 100001: expected 1 to 100000"),
        (
            &["--temperature", "-1"],
            "--temperature -1: expected a finite",
        ),
        (
            &["--temperature", "nan"],
            "--temperature NaN: expected a finite",
        ),
        (
            &["--temperature", "inf"],
            "--temperature inf: expected a finite",
        ),
        (&["--top-k", "0"], "--top-k 0: expected 1 to d_vocab = 40"),
        (&["--top-k", "41"], "--top-k 41: expected 1 to d_vocab = 40"),
    ];
    for (extra, msg) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        fails_with(&args, msg);
    }
    fails_with(
        &["generate", &m, "--tokens", "1,99"],
        "token 99 is out of range",
    );
}

/// Loads a fixture checkpoint and traces `tokens` through the kernel.
fn traced(name: &str, tokens: &[u32]) -> (tinylens_cli::params::Params, Trace) {
    let path = fixture(name).join("model.safetensors");
    let loaded = load_model(&path, None).unwrap();
    let model = loaded.model().unwrap();
    let trace = trace_for(&model, tokens, Attribution::Off).unwrap();
    (loaded.params().unwrap(), trace)
}

#[test]
fn the_last_stage_is_the_models_logits() {
    let tokens = [1, 5, 9, 2, 1, 5, 9, 30, 12];
    for name in ["l2_ln", "l2_shortformer_ln", "l1_nonorm", "l2_induction"] {
        let (params, trace) = traced(name, &tokens);
        for scale in [Scale::Own, Scale::Final] {
            let lens = logit_lens(&params, &tokens, &trace, scale).unwrap();
            assert_eq!(lens.stages.len(), params.config.n_layers + 1);
            let diff = last_stage_difference(&lens, &trace.logits);
            assert!(diff < LAST_STAGE_TOLERANCE, "{name} {scale:?}: {diff:e}");
        }
    }
}

#[test]
fn the_stages_are_the_reference_residual_stream() {
    let tokens = [3, 1, 4, 1, 5, 9, 2, 6];
    for name in ["l2_ln", "l2_shortformer_ln"] {
        let (params, trace) = traced(name, &tokens);
        let acts = Reference::new(&params).unwrap().forward(&tokens).unwrap();
        let stages = accumulated_resid(&params, &tokens, &trace).unwrap();
        let standard = params.config.pos == tinylens::PosEmbed::Standard;
        let embed: Vec<f64> = acts
            .embed
            .iter()
            .zip(&acts.pos_embed)
            .map(|(e, p)| if standard { e + p } else { *e })
            .collect();
        let mut expected = vec![embed];
        expected.extend(acts.layers.iter().map(|l| l.resid_post.clone()));
        assert_eq!(stages.len(), expected.len());
        for (k, (got, want)) in stages.iter().zip(&expected).enumerate() {
            let diff = got
                .iter()
                .zip(want)
                .map(|(&g, &w)| (g as f64 - w).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-4, "{name} stage {k}: max diff {diff:e}");
        }
    }
}

#[test]
fn own_and_final_scales_differ_before_the_last_stage() {
    let tokens = [3, 1, 4, 1, 5, 9, 2, 6];
    let (params, trace) = traced("l2_ln", &tokens);
    let own = logit_lens(&params, &tokens, &trace, Scale::Own).unwrap();
    let fin = logit_lens(&params, &tokens, &trace, Scale::Final).unwrap();
    let gap = |k: usize| {
        own.stages[k]
            .iter()
            .zip(&fin.stages[k])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    assert!(gap(0) > 1e-3, "embedding stage: {}", gap(0));
    assert!(gap(2) < 1e-9, "last stage: {}", gap(2));
}

#[test]
fn ranks_count_larger_logits_and_lower_ids_among_equals() {
    let logits = [1.0, 3.0, 2.0, 3.0];
    assert_eq!(rank_of(&logits, 1), 1);
    assert_eq!(rank_of(&logits, 3), 2);
    assert_eq!(rank_of(&logits, 2), 3);
    assert_eq!(rank_of(&logits, 0), 4);
}

/// The token and logit of a table row: `"tok" 1.234` after the row's label.
fn first_pair(row: &str, after: &str) -> (String, String) {
    let rest = row.split_once(after).expect("the label").1.trim_start();
    let mut parts = rest.split_whitespace();
    (parts.next().unwrap().into(), parts.next().unwrap().into())
}

#[test]
fn lens_last_layer_top_token_is_runs_prediction() {
    let blob = demo_blob();
    let lens = ok(&["lens", &blob, "--prompt", DEMO_PROMPT, "--answer", "so"]);
    let run = ok(&["run", &blob, "--prompt", DEMO_PROMPT, "--top", "1"]);
    let last = lens
        .lines()
        .find(|l| l.trim_start().starts_with("layer 1 "))
        .expect("the last layer's row");
    // `layer 1   rank  logit   "tok" value ...`
    let cols: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(cols[2], "1", "the answer is the top token: {last}");
    let (tok, value) = (cols[4], cols[5]);
    let row = run
        .lines()
        .find(|l| l.trim_start().starts_with("1. "))
        .expect("run's top row");
    let (run_tok, _) = first_pair(row, "1. ");
    let run_value = row
        .split_once("logit")
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!((tok, value), (run_tok.as_str(), run_value), "{lens}\n{run}");
    assert_eq!(cols[3], value, "the answer's logit is the top logit");
    assert!(lens.contains("(they agree)"), "{lens}");
    let embed = lens
        .lines()
        .find(|l| l.trim_start().starts_with("embed "))
        .unwrap();
    let rank: usize = embed.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        rank > 1,
        "the embedding alone should not predict it: {embed}"
    );
}

#[test]
fn lens_prints_every_position_on_request() {
    let out = ok(&[
        "lens",
        &l2_ln(),
        "--prompt",
        "abcab",
        "--all-positions",
        "--top",
        "3",
        "--scale",
        "final",
    ]);
    assert_eq!(out.matches("\nposition ").count(), 5, "{out}");
    let out = ok(&["lens", &l2_ln(), "--prompt", "abcab"]);
    assert_eq!(out.matches("\nposition ").count(), 1, "{out}");
    assert!(out.contains("position 4 (token \"b\")"), "{out}");
}

#[test]
fn lens_refuses_quantized_blobs_and_bad_flags() {
    let int = fixture("../golden/l2_ln.int.tlb");
    fails_with(
        &["lens", int.to_str().unwrap(), "--tokens", "1,2"],
        "the logit lens reads f32 weights and the f32 residual stream; this blob is int",
    );
    let i8 = tmp("l2_ln.lens.i8.tlb");
    let i8 = i8.to_str().unwrap();
    ok(&["quantize", &l2_ln(), "-o", i8, "--format", "i8"]);
    fails_with(&["lens", i8, "--tokens", "1,2"], "this blob is i8");
    let m = l2_ln();
    fails_with(
        &["lens", &m, "--tokens", "1,2", "--top", "0"],
        "--top 0: expected 1 to d_vocab = 40",
    );
    fails_with(
        &["lens", &m, "--tokens", "1,2", "--answer", "40"],
        "--answer 40 is out of range",
    );
    fails_with(
        &["lens", &m, "--tokens", "1,2", "--answer", "zz"],
        "--answer \"zz\" is neither a token",
    );
    let out = ok(&["lens", &m, "--tokens", "1,2", "--answer", "#3"]);
    assert!(out.contains("following \"c\""), "{out}");
}
