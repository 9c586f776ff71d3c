//! The safetensors importer with its config.json and vocab.json, then the blob writer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tinylens_fuzz::fuzz_checkpoint(data));
