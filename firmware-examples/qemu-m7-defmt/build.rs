//! Embeds the model (`TINYLENS_BLOB`, or the demo blob below) and links `memory.x`: see
//! `embed-model`.
use embed_model::{build, NumberFormat::F32, Slot};

fn main() {
    build(&[Slot::model(&[F32], "demo-2l.f32.tlb")]);
}
