//! Embeds the model (`TINYLENS_BLOB`, or the demo blob below) and links `memory.x`: see
//! `embed-model`.
use embed_model::{
    build,
    NumberFormat::{I8Block32, I8},
    Slot,
};

fn main() {
    build(&[Slot::model(&[I8, I8Block32], "demo-2l.i8.tlb")]);
}
