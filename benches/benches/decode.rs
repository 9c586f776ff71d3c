use std::hint::black_box;
use std::time::{Duration, Instant};
use tinylens::Decoder;
use tinylens_benches::{candle_last_logits, Workload, SIZES};

fn main() {
    for (name, cfg) in SIZES {
        let work = Workload::new(&cfg);
        let model = work.model();
        let mut arena = vec![0.0; cfg.state_len()];
        let mut decoder = Decoder::new(&model, &mut arena).unwrap();
        let reference = work.reference();
        let n = 200;
        let mut step = Duration::ZERO;
        let t0 = Instant::now();
        for _ in 0..n {
            work.prepare(&mut decoder);
            let t = Instant::now();
            black_box(decoder.step(work.next_token()).unwrap());
            step += t.elapsed();
        }
        let wall = t0.elapsed();
        let t = Instant::now();
        for _ in 0..n {
            black_box(candle_last_logits(&reference, black_box(&work.prompt)));
        }
        let candle = t.elapsed();
        println!(
            "{name}: step {:?} prefill-ish {:?} candle {:?}",
            step / n,
            (wall - step) / n,
            candle / n
        );
    }
}
