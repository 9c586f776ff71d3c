//! The blob loader: `Model::from_blob` on any bytes, then decoding in the blob's format.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tinylens_fuzz::fuzz_blob(data));
