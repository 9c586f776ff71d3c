//! FORMAT.md's worked example is this test's output: the hex dump in the document must be the
//! bytes the writer produces and the reader accepts, so the specification cannot drift.

use tinylens::blob::{tensors, TensorKind};
use tinylens::writer::{write_f32, AlignedBytes};
use tinylens::{Config, Model, Norm, PosEmbed};

/// The example: one layer, one head, d_model 2, d_head 1, two tokens "a" and "b".
fn example() -> Vec<u8> {
    let cfg = Config {
        n_layers: 1,
        n_heads: 1,
        d_model: 2,
        d_head: 1,
        d_vocab: 2,
        n_ctx: 2,
        norm: Norm::None,
        pos: PosEmbed::None,
    };
    let value = |kind: TensorKind| -> &'static [f32] {
        match kind {
            TensorKind::WE => &[1.0, 0.0, 0.0, 1.0],
            TensorKind::WQ | TensorKind::WK | TensorKind::WV => &[1.0, 0.5],
            TensorKind::BQ | TensorKind::BK | TensorKind::BV => &[0.0],
            TensorKind::WO => &[1.0, -1.0],
            TensorKind::BO => &[0.0, 0.0],
            TensorKind::WU => &[2.0, 0.0, 0.0, 2.0],
            TensorKind::BU => &[0.0, 0.0],
            _ => &[],
        }
    };
    assert_eq!(tensors(&cfg).count(), 11);
    write_f32(&cfg, Some(&["a", "b"]), |id| value(id.kind)).unwrap()
}

/// `xxd`-style: offset, 16 bytes in hex.
fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}: {}\n", i * 16, hex.join(" "))
        })
        .collect()
}

#[test]
fn format_md_example_is_what_the_writer_writes() {
    let bytes = example();
    let aligned = AlignedBytes::new(&bytes);
    let model = Model::from_blob(aligned.as_bytes()).unwrap();
    assert_eq!(model.vocab().unwrap().text(1), Some("b"));
    let dump = hex_dump(&bytes);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../FORMAT.md"))
        .expect("FORMAT.md at the repository root");
    let start = doc
        .find("<!-- example-hex -->\n```text\n")
        .expect("example marker in FORMAT.md");
    let body = &doc[start + "<!-- example-hex -->\n```text\n".len()..];
    let end = body.find("```").expect("end of the example block");
    assert_eq!(
        &body[..end],
        dump,
        "FORMAT.md's example is stale; the writer now produces:\n{dump}"
    );
}
