//! cargo-fuzz target: arbitrary bytes as a search-space RON file, through parsing, validation
//! and both samplers on the tiny encoder (`pets::fuzz::space_bytes`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = pets::fuzz::space_bytes(data) {
        panic!("{violation}");
    }
});
