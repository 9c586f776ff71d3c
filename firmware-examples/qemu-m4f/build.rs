//! Embeds the model (`TINYLENS_BLOB`, or the demo blobs below) and links `memory.x`: see
//! `embed-model`.
//! One model per binary: `TINYLENS_BLOB` goes to the one that runs its format.
use embed_model::{build, NumberFormat::*, Slot};

fn main() {
    build(&[
        Slot {
            file: "model-f32.rs",
            formats: &[F32],
            demo: "demo-2l.f32.tlb",
        },
        Slot {
            file: "model-i8.rs",
            formats: &[I8, I8Block32],
            demo: "demo-2l.i8.tlb",
        },
        Slot {
            file: "model-int.rs",
            formats: &[Int],
            demo: "demo-2l.int.tlb",
        },
    ]);
}
