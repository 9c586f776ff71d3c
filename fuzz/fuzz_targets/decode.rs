//! `step` (and `prefill`, `slide`, attribution) on arbitrary token streams over small fuzzed
//! configs and weights, in every number format.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: tinylens_fuzz::DecodeInput| tinylens_fuzz::fuzz_decode(&input));
