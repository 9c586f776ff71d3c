//! Hardening: every single-bit flip of a small quantized blob is detected, and a long run
//! through the sliding window neither fails nor drifts (`cargo test -p tinylens-tests
//! --release --test hardening -- --ignored` runs the million-token version). The fuzzers'
//! committed corpora are replayed by the test command's `cargo xtask fuzz` smoke run.

use tinylens::writer::AlignedBytes;
use tinylens::{Config, Decoder, Error, IntDecoder, Model, Norm, NumberFormat, PosEmbed};
use tinylens_benches::random_params;
use tinylens_cli::quantize::quantize_params;

/// The smallest interesting model: one layer, LayerNorm, positions, a vocabulary.
fn tiny() -> Config {
    Config {
        n_layers: 1,
        n_heads: 1,
        d_model: 4,
        d_head: 2,
        d_vocab: 5,
        n_ctx: 3,
        norm: Norm::LayerNorm { eps: 1e-5 },
        pos: PosEmbed::Standard,
    }
}

fn blob(cfg: &Config, format: NumberFormat) -> Vec<u8> {
    let mut p = random_params(cfg, 7);
    p.vocab = Some((0..cfg.d_vocab).map(|i| format!("t{i}")).collect());
    quantize_params(&p, format, None).unwrap()
}

#[test]
fn every_single_bit_flip_of_a_quantized_blob_is_detected() {
    for format in [NumberFormat::I8, NumberFormat::I8Block32, NumberFormat::Int] {
        let good = blob(&tiny(), format);
        assert!(Model::from_blob(AlignedBytes::new(&good).as_bytes()).is_ok());
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = Model::from_blob(AlignedBytes::new(&bad).as_bytes()).err();
            assert!(
                err.is_some(),
                "{}: flip of bit {bit} (byte {}) went unnoticed",
                format.name(),
                bit / 8
            );
        }
    }
}

/// Counts the bytes the current thread allocates, so a test can show that decoding allocates
/// nothing (tests run on several threads; each counts its own).
struct CountingAlloc;

thread_local! {
    static ALLOCATED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocated() -> usize {
    ALLOCATED.with(|a| a.get())
}

/// Decodes `n` tokens through a context of 16, sliding the window (keeping the newest half)
/// whenever it is full, and checks that nothing fails, every logit stays finite, and nothing
/// is allocated: memory use is the caller's arena and a 16-token window, whatever `n` is.
/// Returns the number of slides.
fn long_run(format: NumberFormat, n: usize) -> usize {
    let cfg = Config {
        n_layers: 2,
        n_heads: 2,
        d_model: 8,
        d_head: 4,
        d_vocab: 11,
        n_ctx: 16,
        norm: Norm::LayerNorm { eps: 1e-5 },
        pos: PosEmbed::Standard,
    };
    let bytes = quantize_params(&random_params(&cfg, 3), format, None).unwrap();
    let bytes = AlignedBytes::new(&bytes);
    let model = Model::from_blob(bytes.as_bytes()).unwrap();
    let (ctx, keep) = (cfg.n_ctx, cfg.n_ctx / 2);
    let mut window = [0u32; 16];
    let (mut slides, mut seen, mut next) = (0, 0, 1u32);
    let mut f32_arena = vec![0.0f32; cfg.state_len()];
    let mut int_arena = vec![0i32; cfg.int_state_len()];
    let before = allocated();
    macro_rules! decode {
        ($dec:expr, $finite:expr) => {{
            let dec = $dec;
            for i in 0..n {
                let logits = match dec.step(next) {
                    Err(Error::ContextFull { .. }) => {
                        slides += 1;
                        dec.slide(&window[seen - keep..seen]).unwrap();
                        window.copy_within(seen - keep..seen, 0);
                        seen = keep;
                        dec.step(next)
                    }
                    other => other,
                }
                .unwrap_or_else(|e| panic!("{}: token {i}: {e}", format.name()));
                assert!(logits.iter().all($finite), "token {i}: non-finite logit");
                window[seen] = next;
                seen += 1;
                // The best next token, shifted so the stream does not settle into a short cycle.
                let best =
                    (0..logits.len()).max_by(|&a, &b| logits[a].partial_cmp(&logits[b]).unwrap());
                next = (best.unwrap() as u32 + i as u32) % cfg.d_vocab as u32;
                assert!(dec.len() <= ctx && dec.capacity() == ctx);
            }
        }};
    }
    if format == NumberFormat::Int {
        decode!(
            &mut IntDecoder::new(&model, &mut int_arena).unwrap(),
            |_: &i32| true
        );
    } else {
        decode!(
            &mut Decoder::new(&model, &mut f32_arena).unwrap(),
            |v: &f32| v.is_finite()
        );
    }
    assert_eq!(
        allocated() - before,
        0,
        "{}: decoding allocated",
        format.name()
    );
    slides
}

#[test]
fn decoding_through_the_sliding_window_runs_on() {
    for format in NumberFormat::ALL {
        let slides = long_run(format, 2_000);
        assert_eq!(slides, (2_000 - 1 - 16) / 8 + 1, "{}", format.name());
    }
}

/// One million tokens per format (minutes in release; not part of the normal suite).
#[test]
#[ignore]
fn decoding_a_million_tokens_through_the_sliding_window() {
    for format in NumberFormat::ALL {
        let t = std::time::Instant::now();
        let slides = long_run(format, 1_000_000);
        println!(
            "{}: 1000000 tokens, {slides} slides, {:.1} s",
            format.name(),
            t.elapsed().as_secs_f64()
        );
    }
}
