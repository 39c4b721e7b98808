//! Property-based fuzzing of the design and space parsers and the compiler (`pets::fuzz`), run as a
//! normal test: a seeded generator mutates the shipped presets and spaces (numbers swapped for
//! edge values, grammar tokens inserted, spans deleted, duplicated or spliced between files, raw
//! bytes and truncations) and every input must give a typed error or pass the invariants, never
//! a panic. Inputs that once found a bug live in `tests/fixtures/fuzz-found/` and are replayed.
//!
//! `PETS_FUZZ_CASES` (default 600 per kind), `PETS_FUZZ_SEED` (default 0) and `PETS_FUZZ_SECONDS`
//! (a time bound) widen a run: CI adds one with a new seed each day. cargo-fuzz (`fuzz/`) explores
//! further with coverage guidance.

use pets::fuzz::{design_bytes, space_bytes, Violation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Values that have broken parsers and arithmetic before: zero, signs, the integer limits, floats
/// that are not numbers, huge exponents.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "47",
    "48",
    "49",
    "96",
    "255",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "1e40",
    "-1e40",
    "1e-45",
    "0.0",
    "-0.0",
    "inf",
    "-inf",
    "NaN",
    "1.5",
    "0x10",
    "1_000",
];

/// Pieces of the design and space grammar, so mutants stay close to meaningful input.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "Some(",
    "None",
    "Module(",
    "Slot(",
    "form: ",
    "site: ",
    "Prefix(l: 4)",
    "Lora(r: 4, alpha: 8.0)",
    "Bottleneck(r: 8, activation: Relu)",
    "reparam: Some(",
    "AttentionHeads",
    "Attention",
    "Ffn",
    "Projection(Query)",
    "Projection(FfnOut)",
    "Sequential",
    "Parallel",
    "Scaled(",
    "LearnedScale(",
    "Gated",
    "Add",
    "Range(",
    "List(",
    "AllExcept(",
    "All",
    "layers: ",
    "insertion: ",
    "composition: ",
    "init: Normal(",
    "unfreeze: [LayerNorms]",
    "name: ",
    "optional: true",
    "widths: ",
    "LogRange(",
    "Widths(",
    "r: ",
    "l: ",
    "alpha: ",
    "//",
    "/*",
    "*/",
    "\u{0}",
    "é",
    "\u{FFFD}",
];

fn cases() -> usize {
    std::env::var("PETS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

/// A wall-clock bound for exploring runs (`PETS_FUZZ_SECONDS`); none by default.
fn deadline() -> Option<std::time::Instant> {
    let seconds: u64 = std::env::var("PETS_FUZZ_SECONDS").ok()?.parse().ok()?;
    Some(std::time::Instant::now() + std::time::Duration::from_secs(seconds))
}

fn seed() -> u64 {
    std::env::var("PETS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn ron_files(dirs: &[&str]) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap_or_else(|e| panic!("{d}: {e}")))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// A random span of `v` (possibly empty).
fn span(rng: &mut StdRng, v: &[u8]) -> (usize, usize) {
    let a = rng.random_range(0..=v.len());
    let b = rng.random_range(a..=v.len().min(a + 40));
    (a, b)
}

/// One mutation of `input`; `other` supplies spans for splicing.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, other: &[u8]) {
    match rng.random_range(0..8) {
        // Swap a number (a run of digits, maybe signed or fractional) for an edge value.
        0 | 1 => {
            let starts: Vec<usize> = (0..input.len())
                .filter(|&i| {
                    input[i].is_ascii_digit() && (i == 0 || !input[i - 1].is_ascii_digit())
                })
                .collect();
            if starts.is_empty() {
                return;
            }
            let a = starts[rng.random_range(0..starts.len())];
            let mut b = a;
            while b < input.len() && (input[b].is_ascii_digit() || input[b] == b'.') {
                b += 1;
            }
            let n = NUMBERS[rng.random_range(0..NUMBERS.len())];
            input.splice(a..b, n.bytes());
        }
        2 | 3 => {
            let at = rng.random_range(0..=input.len());
            let t = TOKENS[rng.random_range(0..TOKENS.len())];
            input.splice(at..at, t.bytes());
        }
        4 => {
            let (a, b) = span(rng, input);
            input.drain(a..b);
        }
        5 => {
            let (a, b) = span(rng, input);
            let copy = input[a..b].to_vec();
            let at = rng.random_range(0..=input.len());
            input.splice(at..at, copy);
        }
        6 => {
            let (a, b) = span(rng, other);
            let at = rng.random_range(0..=input.len());
            input.splice(at..at, other[a..b].iter().copied());
        }
        _ => {
            if rng.random_bool(0.5) {
                let at = rng.random_range(0..=input.len());
                input.insert(at, rng.random());
            } else {
                input.truncate(rng.random_range(0..=input.len()));
            }
        }
    }
}

/// Runs `check` on one input; a panic or a violation becomes a report naming the input.
fn run_one(check: fn(&[u8]) -> Result<(), Violation>, input: &[u8]) -> Option<String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| check(input)));
    let what = match outcome {
        Ok(Ok(())) => return None,
        Ok(Err(v)) => format!("violation: {v}"),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("panic: {msg}")
        }
    };
    Some(format!(
        "{what}\ninput: {:?}",
        String::from_utf8_lossy(input)
    ))
}

/// Generates `cases()` mutants of the seed files and checks each; failing inputs are written to
/// `target/fuzz-found/<kind>/` for the corpus.
fn fuzz(kind: &str, seeds: &[Vec<u8>], check: fn(&[u8]) -> Result<(), Violation>) {
    let mut rng = StdRng::seed_from_u64(seed() ^ kind.len() as u64);
    let (mut failures, mut tried, deadline) = (Vec::new(), 0, deadline());
    for case in 0..cases() {
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            break;
        }
        tried += 1;
        let base = &seeds[rng.random_range(0..seeds.len())];
        let other = &seeds[rng.random_range(0..seeds.len())];
        let mut input = base.clone();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut rng, &mut input, other);
        }
        if let Some(report) = run_one(check, &input) {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("fuzz-found")
                .join(kind);
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("case-{case}.ron")), &input);
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried} {kind} inputs of seed {} failed (kept in target/tmp/fuzz-found/{kind}/):\n{}",
        failures.len(),
        seed(),
        failures.join("\n\n")
    );
}

#[test]
fn mutated_designs_never_panic_and_keep_the_invariants() {
    let seeds = ron_files(&[
        "search_spaces/presets",
        "search_spaces/found",
        "search_spaces/ablations",
    ]);
    assert!(seeds.len() >= 15);
    // The shipped presets pass unchanged: the invariants hold on real input.
    for s in &seeds {
        assert_eq!(run_one(design_bytes, s), None);
    }
    fuzz("design", &seeds, design_bytes);
}

#[test]
fn mutated_spaces_never_panic_and_keep_the_invariants() {
    let seeds = ron_files(&["search_spaces"]);
    assert_eq!(seeds.len(), 2, "mam.ron and unified.ron");
    for s in &seeds {
        assert_eq!(run_one(space_bytes, s), None);
    }
    fuzz("space", &seeds, space_bytes);
}

/// Every input that once found a bug (a panic or a violation) stays fixed.
#[test]
fn the_corpus_of_inputs_that_found_bugs_replays_cleanly() {
    let mut replayed = 0;
    for (kind, check) in [
        ("design", design_bytes as fn(&[u8]) -> Result<(), Violation>),
        ("space", space_bytes),
    ] {
        let dir = Path::new("tests/fixtures/fuzz-found").join(kind);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let input = std::fs::read(&file).unwrap();
            assert_eq!(run_one(check, &input), None, "{}", file.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "the corpus is empty");
}
