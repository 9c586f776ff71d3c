//! Embeds the model (`TINYLENS_BLOB`, or the demo blob below) and links `memory.x`: see
//! `embed-model`.
use embed_model::{build, NumberFormat::Int, Slot};

fn main() {
    build(&[Slot::model(&[Int], "demo-2l-micro.int.tlb")]);
}
