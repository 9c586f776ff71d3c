//! What `embed-model` writes for the demo blobs, and every refusal with its figures.

use std::path::PathBuf;

use embed_model::{check_format, embed, prompt, Blob, Memory, Prompt, Refusal, Request, Slot};
use tinylens::NumberFormat;

fn fixture(name: &str) -> Blob {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/firmware")
        .join(name);
    Blob::read(&path).unwrap()
}

/// The lm3s6965 of the M3 example: 256 KB flash, 64 KB RAM.
const M3: Memory = Memory {
    flash: 256 * 1024,
    ram: 64 * 1024,
};

fn request(prompt: Option<Prompt>, new_tokens: usize) -> Request {
    Request {
        blob: None,
        prompt,
        new_tokens,
    }
}

#[test]
fn writes_the_demo_with_its_config_name_and_tokens() {
    let source = embed(&fixture("demo-2l.int.tlb"), &request(None, 8), &M3).unwrap();
    assert!(
        source
            .contains("n_layers: 2, n_heads: 4, d_model: 64, d_head: 16, d_vocab: 233, n_ctx: 64"),
        "{source}"
    );
    assert!(
        source.contains("pos: tinylens::PosEmbed::Shortformer"),
        "{source}"
    );
    assert!(source.contains("model: \"demo-2l\""), "{source}");
    assert!(
        source.contains("type State = tinylens::IntArena<{ CONFIG.int_state_len() }>"),
        "{source}"
    );
    let tokens = source
        .split("tokens: Some(&[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    assert_eq!(
        tokens.split(", ").count(),
        20,
        "the demo prompt is 20 tokens: {tokens}"
    );
    let micro = embed(&fixture("demo-2l-micro.int.tlb"), &request(None, 8), &M3).unwrap();
    assert!(micro.contains("model: \"demo-2l-micro\"") && micro.contains("n_ctx: 32"));
    let stm32f411 = Memory {
        flash: 512 * 1024,
        ram: 128 * 1024,
    };
    let float = embed(&fixture("demo-2l.i8.tlb"), &request(None, 8), &stm32f411).unwrap();
    assert!(
        float.contains("tinylens::Arena<{ CONFIG.state_len() }>"),
        "{float}"
    );
}

#[test]
fn refuses_a_blob_of_another_format() {
    let slots = [Slot::model(&[NumberFormat::Int], "demo-2l.int.tlb")];
    let blob = fixture("demo-2l.f32.tlb");
    match check_format(&blob, &slots) {
        Err(Refusal::Format { found, runs, .. }) => assert_eq!((found, runs), ("f32", vec!["int"])),
        other => panic!("{other:?}"),
    }
    assert_eq!(check_format(&fixture("demo-2l.int.tlb"), &slots), Ok(()));
}

#[test]
fn refuses_a_model_larger_than_the_flash() {
    let blob = fixture("demo-2l.f32.tlb");
    let refusal = embed(&blob, &request(None, 8), &M3).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::Flash {
            blob: 270_900,
            code: embed_model::fit::CODE_BYTES,
            flash: 262_144
        }
    );
    assert!(refusal.to_string().contains("270900 bytes"), "{refusal}");
}

#[test]
fn refuses_a_state_larger_than_the_ram() {
    let micro_bit = Memory {
        flash: 256 * 1024,
        ram: 16 * 1024,
    };
    let blob = fixture("demo-2l.int.tlb");
    let state = blob.model().unwrap().config().int_state_bytes();
    assert_eq!(
        embed(&blob, &request(None, 8), &micro_bit),
        Err(Refusal::Ram {
            state,
            what: "Config::int_state_bytes()",
            reserve: embed_model::fit::RAM_RESERVE_BYTES,
            ram: 16_384
        })
    );
    // The same weights with half the context fit.
    assert!(embed(
        &fixture("demo-2l-micro.int.tlb"),
        &request(None, 8),
        &micro_bit
    )
    .is_ok());
}

#[test]
fn refuses_text_outside_the_vocabulary() {
    let prompt = Some(Prompt::Text(" The guests were Ku§".into()));
    let refusal = embed(&fixture("demo-2l.int.tlb"), &request(prompt, 8), &M3).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::OutOfVocab {
            found: '§', at: 19
        }
    );
}

#[test]
fn refuses_token_ids_outside_the_vocabulary() {
    let prompt = Some(Prompt::Tokens(vec![3, 232, 233]));
    let refusal = embed(&fixture("demo-2l.int.tlb"), &request(prompt, 8), &M3).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TokenId {
            id: 233,
            index: 2,
            d_vocab: 233
        }
    );
}

#[test]
fn refuses_a_prompt_longer_than_the_context() {
    // demo-2l-micro holds 32 positions: 25 prompt tokens and 8 new ones take 32, 26 take 33.
    let blob = fixture("demo-2l-micro.int.tlb");
    let fits = Some(Prompt::Tokens(vec![5; 25]));
    assert!(embed(&blob, &request(fits, 8), &M3).is_ok());
    let long = Some(Prompt::Tokens(vec![5; 26]));
    assert_eq!(
        embed(&blob, &request(long, 8), &M3),
        Err(Refusal::Context {
            prompt: 26,
            new_tokens: 8,
            n_ctx: 32
        })
    );
    assert_eq!(
        embed(&blob, &request(Some(Prompt::Tokens(vec![])), 8), &M3),
        Err(Refusal::EmptyPrompt)
    );
}

#[test]
fn asks_for_a_prompt_when_the_demos_does_not_suit() {
    // demo-2l-micro's context of 32 holds the demo's 20 prompt tokens and 8 new ones, not 20.
    let blob = fixture("demo-2l-micro.int.tlb");
    let refusal = embed(&blob, &request(None, 20), &M3).unwrap_err();
    let context = Refusal::Context {
        prompt: 20,
        new_tokens: 20,
        n_ctx: 32,
    };
    assert_eq!(refusal, Refusal::DemoPrompt(Box::new(context)));
    assert!(
        refusal.to_string().contains("set TINYLENS_PROMPT"),
        "{refusal}"
    );
}

#[test]
fn reads_token_lists() {
    assert_eq!(prompt::parse_tokens("1, 2 3,4"), Ok(vec![1, 2, 3, 4]));
    assert!(matches!(
        prompt::parse_tokens("1,x"),
        Err(Refusal::Variable("TINYLENS_TOKENS", _))
    ));
}
