//! cargo-fuzz target: arbitrary bytes as a design RON file, through parsing, validation, the
//! accounting, compilation and a forward pass on the tiny encoder (`pets::fuzz::design_bytes`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = pets::fuzz::design_bytes(data) {
        panic!("{violation}");
    }
});
