//! The `pets` command line.
fn main() {}
