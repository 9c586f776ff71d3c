//! Writes the committed seed corpora, `fuzz/seeds/<target>/`: small valid blobs of every
//! format and config variant, small checkpoints with and without config.json and vocab.json
//! (plus the F16 fixture with TransformerLens' own config.json), and structured decode inputs.
//!
//!     cargo +nightly run --manifest-path fuzz/Cargo.toml --example seeds

use std::fs;
use std::path::Path;

use tinylens::{Config, Norm, NumberFormat, PosEmbed};
use tinylens_cli::import::{config_to_json, save_checkpoint};
use tinylens_cli::quantize::quantize_params;
use tinylens_fuzz::{blob_seed, checkpoint_seed};

fn tiny(n_layers: usize, norm: Norm, pos: PosEmbed) -> Config {
    Config {
        n_layers,
        n_heads: 2,
        d_model: 4,
        d_head: 2,
        d_vocab: 5,
        n_ctx: 4,
        norm,
        pos,
    }
}

/// Deterministic small weights for `cfg`: the decode target's own generator.
fn params(cfg: Config, seed: u32) -> tinylens_cli::params::Params {
    let bytes = decode_seed(cfg, NumberFormat::F32, seed);
    let input = <tinylens_fuzz::DecodeInput as arbitrary::Arbitrary>::arbitrary_take_rest(
        arbitrary::Unstructured::new(&bytes),
    )
    .expect("seed bytes decode");
    assert_eq!(input.config(), cfg, "the seed encodes the config");
    input.params()
}

/// The bytes `DecodeInput::arbitrary_take_rest` reads as this config, format and seed, with a
/// token stream that runs past the context.
fn decode_seed(cfg: Config, format: NumberFormat, seed: u32) -> Vec<u8> {
    let mut out = vec![
        (cfg.n_layers - 1) as u8,
        (cfg.n_heads - 1) as u8,
        (cfg.d_model - 1) as u8,
        (cfg.d_head - 1) as u8,
        (cfg.d_vocab - 1) as u8,
        (cfg.n_ctx - 1) as u8,
    ];
    match cfg.norm {
        Norm::None => out.push(0),
        Norm::LayerNorm { .. } => out.extend([1, 2]),
    }
    out.push(match cfg.pos {
        PosEmbed::Standard => 0,
        PosEmbed::Shortformer => 1,
        PosEmbed::None => 2,
    });
    out.push(NumberFormat::ALL.iter().position(|&f| f == format).unwrap() as u8);
    out.extend(seed.to_le_bytes());
    out.push(0); // scale 2^0
    out.push(0); // no own weights (arbitrary's Vec: continuation byte 0 ends it)
    for t in 0..20u32 {
        out.push(1);
        out.extend((t * 3 % 7).to_le_bytes());
    }
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = root.join("seeds");
    for target in ["blob", "checkpoint", "decode"] {
        let dir = seeds.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
    }
    let ln = Norm::LayerNorm { eps: 1e-5 };
    let variants = [
        tiny(1, Norm::None, PosEmbed::Standard),
        tiny(2, ln, PosEmbed::Standard),
        tiny(1, ln, PosEmbed::Shortformer),
        tiny(1, Norm::None, PosEmbed::None),
    ];
    for (i, &cfg) in variants.iter().enumerate() {
        let mut p = params(cfg, i as u32 + 1);
        if i == 1 {
            p.vocab = Some(["a", "b", " ", "é", "<eos>"].map(String::from).to_vec());
        }
        for format in NumberFormat::ALL {
            let name = format!("{i}-{}", format.name());
            if let Ok(blob) = quantize_params(&p, format, None) {
                fs::write(seeds.join("blob").join(&name), blob_seed(&blob)).unwrap();
            }
            fs::write(
                seeds.join("decode").join(&name),
                decode_seed(cfg, format, i as u32 + 1),
            )
            .unwrap();
        }
        // The checkpoint as `tinylens quantize` finds it on disk.
        let tmp = std::env::temp_dir().join(format!("tinylens-seed-{}-{i}", std::process::id()));
        fs::create_dir_all(&tmp).unwrap();
        save_checkpoint(&p, &tmp.join("model.safetensors")).unwrap();
        let st = fs::read(tmp.join("model.safetensors")).unwrap();
        let config = config_to_json(&cfg).to_string();
        let vocab = p.vocab.as_ref().map(|v| serde_json::to_string(v).unwrap());
        let out = seeds.join("checkpoint");
        fs::write(
            out.join(format!("{i}-config")),
            checkpoint_seed(Some(&config), vocab.as_deref(), &st),
        )
        .unwrap();
        fs::write(
            out.join(format!("{i}-inferred")),
            checkpoint_seed(None, None, &st),
        )
        .unwrap();
        fs::remove_dir_all(&tmp).unwrap();
    }
    // Half-precision tensors and TransformerLens' full config.json.
    let fixture = root.join("../fixtures/tl/l3_ln_f16");
    let config = fs::read_to_string(fixture.join("config.json")).unwrap();
    let vocab = fs::read_to_string(fixture.join("vocab.json")).unwrap();
    let st = fs::read(fixture.join("model.safetensors")).unwrap();
    fs::write(
        seeds.join("checkpoint").join("l3_ln_f16"),
        checkpoint_seed(Some(&config), Some(&vocab), &st),
    )
    .unwrap();
    for target in ["blob", "checkpoint", "decode"] {
        let n = fs::read_dir(seeds.join(target)).unwrap().count();
        println!("seeds/{target}: {n} files");
    }
}
