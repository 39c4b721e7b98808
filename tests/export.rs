//! Export, loading, merge, PEFT files and prediction on a tiny random encoder (no downloads).

use candle_core::{DType, Device, Tensor};
use pets::assets::Cache;
use pets::backbone::encoder::Encoder;
use pets::backbone::tiny::write_tiny_model;
use pets::batch::{make_batch, Batch, TokenizedSplit};
use pets::export::{
    export, load_adapter, AdapterSource, ExportFormat, ExportOptions, Layout, LoadedAdapter,
    Manifest,
};
use pets::model::AdaptedModel;
use pets::spec::Design;
use pets::tokenize::TextEncoder;
use pets::train::Classifier;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

const TEXTS: &[&str] = &[
    "the film was very great .",
    "a movie is not good",
    "the plot was awful and dull !",
    "actors",
];

struct Fixture {
    dir: PathBuf,
    model: PathBuf,
    cache: Cache,
}

fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("pets-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.join("model");
    write_tiny_model(&model, 0).unwrap();
    let cache = Cache::at(dir.join("cache"));
    Fixture { dir, model, cache }
}

fn design(ron: &str) -> Design {
    Design::from_ron(ron, "test").unwrap()
}

fn preset(name: &str) -> Design {
    Design::from_file(Path::new(&format!("search_spaces/presets/{name}.ron"))).unwrap()
}

/// A model of `design` on the fixture's encoder with every trainable tensor moved off its
/// initial value (zero up-projections would make every check trivially pass).
fn perturbed(f: &Fixture, design: &Design) -> AdaptedModel {
    let encoder = Encoder::from_folder(&f.model, &Device::Cpu).unwrap();
    let model = AdaptedModel::build(encoder, design, 2, 1).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for var in model.store.named().values() {
        let noise: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-0.1..0.1))
            .collect();
        let noise = Tensor::from_vec(noise, var.dims(), &Device::Cpu).unwrap();
        var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
    }
    model
}

fn source(f: &Fixture, model: &AdaptedModel) -> AdapterSource {
    let metrics = serde_json::json!({"accuracy": 0.5});
    let labels = vec!["neg".to_string(), "pos".to_string()];
    AdapterSource::from_model(model, f.model.to_str().unwrap(), labels, 16, metrics)
}

fn options(format: ExportFormat, merge: bool) -> ExportOptions {
    ExportOptions {
        format,
        merge,
        force: false,
    }
}

fn export_to(
    f: &Fixture,
    model: &AdaptedModel,
    out: &Path,
    format: ExportFormat,
    merge: bool,
) -> pets::Result<Manifest> {
    export(&source(f, model), out, &options(format, merge), &f.cache)
}

fn load(f: &Fixture, dir: &Path) -> pets::Result<LoadedAdapter> {
    load_adapter(dir, &f.cache, &Device::Cpu)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn batch(f: &Fixture) -> Batch {
    let text = TextEncoder::from_file(&f.model.join("tokenizer.json"), 16).unwrap();
    let split = TokenizedSplit {
        ids: text.encode(TEXTS).unwrap(),
        labels: vec![0; TEXTS.len()],
    };
    let all: Vec<usize> = (0..TEXTS.len()).collect();
    make_batch(&split, &all, text.pad_id, &Device::Cpu).unwrap()
}

fn logits(model: &dyn Classifier, batch: &Batch) -> Vec<Vec<f32>> {
    model.logits(batch, false).unwrap().to_vec2().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let pairs = a.iter().flatten().zip(b.iter().flatten());
    pairs.map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn error_of<T>(result: pets::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        // Shown with --nocapture, to read the messages users get.
        Err(e) => {
            eprintln!("error: {e}");
            e.to_string()
        }
    }
}

#[test]
fn export_then_load_gives_the_same_logits_for_every_preset() {
    let f = fixture("presets");
    let designs = pets::report::load_presets(Path::new("search_spaces/presets"), &[]).unwrap();
    assert_eq!(designs.len(), 11);
    let batch = batch(&f);
    for design in &designs {
        let model = perturbed(&f, design);
        let expected = logits(&model, &batch);
        let fresh = AdaptedModel::build(
            Encoder::from_folder(&f.model, &Device::Cpu).unwrap(),
            design,
            2,
            1,
        )
        .unwrap();
        assert!(
            max_diff(&expected, &logits(&fresh, &batch)) > 1e-3,
            "{}: trivial",
            design.name
        );
        let out = f.dir.join(&design.name);
        let manifest = export_to(&f, &model, &out, ExportFormat::Pets, false).unwrap();
        let loaded = load(&f, &out).unwrap();
        let diff = max_diff(&expected, &logits(&loaded.model, &batch));
        assert!(diff <= 1e-5, "{}: max abs diff {diff}", design.name);
        // Only the design's, the head's and unfrozen backbone tensors are saved.
        let saved =
            candle_core::safetensors::load(out.join("adapter.safetensors"), &Device::Cpu).unwrap();
        let mut names: Vec<&String> = saved.keys().collect();
        names.sort();
        let expected_names: Vec<&String> = model.store.named().keys().collect();
        assert_eq!(names, expected_names, "{}", design.name);
        assert!(names.iter().any(|n| *n == "head.weight"));
        let backbone = names.iter().any(|n| n.starts_with("backbone."));
        assert_eq!(backbone, !design.unfreeze.is_empty(), "{}", design.name);
        assert_eq!(manifest.layout, Layout::Adapter);
        assert_eq!(manifest.params.design, model.cost.trainable);
        assert_eq!(manifest.params.head, 2 * 48 + 2);
        assert_eq!(manifest.label_names, ["neg", "pos"]);
        assert_eq!(manifest.max_len, 16);
        assert_eq!(manifest.metrics["accuracy"], 0.5);
        assert_eq!(manifest.base_model.sha256.len(), 64);
        for file in ["design.ron", "tokenizer.json", "manifest.json"] {
            assert!(out.join(file).is_file(), "{}: {file}", design.name);
        }
    }
}

#[test]
fn a_different_base_model_is_refused() {
    let f = fixture("mismatch");
    let model = perturbed(&f, &preset("lora"));
    let out = f.dir.join("adapter");
    let manifest = export_to(&f, &model, &out, ExportFormat::Pets, false).unwrap();
    write_tiny_model(&f.model, 1).unwrap();
    let err = error_of(load(&f, &out));
    assert!(err.contains(&manifest.base_model.sha256), "{err}");
    assert!(
        err.contains("model.safetensors") && err.contains("refusing"),
        "{err}"
    );
    std::fs::remove_dir_all(&f.model).unwrap();
    let err = error_of(load(&f, &out));
    assert!(
        err.contains("base model") && err.contains("not available"),
        "{err}"
    );
}

#[test]
fn corrupt_truncated_or_mismatched_tensor_files_are_errors() {
    let f = fixture("corrupt");
    let model = perturbed(&f, &preset("mam"));
    let out = f.dir.join("adapter");
    export_to(&f, &model, &out, ExportFormat::Pets, false).unwrap();
    let file = out.join("adapter.safetensors");
    let good = std::fs::read(&file).unwrap();
    let mut flipped = good.clone();
    flipped[0] ^= 0xff; // the header length
    let mut garbled = good.clone();
    garbled[10] = b'}'; // inside the JSON header
    for bytes in [
        good[..good.len() / 2].to_vec(),
        good[..5].to_vec(),
        Vec::new(),
        flipped,
        garbled,
    ] {
        std::fs::write(&file, &bytes).unwrap();
        let err = error_of(load(&f, &out));
        assert!(err.contains("adapter.safetensors"), "{err}");
    }
    std::fs::remove_file(&file).unwrap();
    let err = error_of(load(&f, &out));
    assert!(err.contains("adapter.safetensors"), "{err}");

    let tensors = || candle_core::safetensors::load_buffer(&good, &Device::Cpu).unwrap();
    let mut missing = tensors();
    missing.remove("ffn.layer1.up.weight");
    let mut extra = tensors();
    extra.insert(
        "ffn.layer9.up.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let mut misshaped = tensors();
    misshaped.insert(
        "head.bias".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    for (map, expected) in [
        (missing, "tensor ffn.layer1.up.weight is missing"),
        (extra, "unexpected tensor ffn.layer9.up.weight"),
        (misshaped, "tensor head.bias has shape [3]"),
    ] {
        candle_core::safetensors::save(&map, &file).unwrap();
        let err = error_of(load(&f, &out));
        assert!(
            err.contains(expected) && err.contains("adapter.safetensors"),
            "{err}"
        );
    }
    std::fs::write(out.join("manifest.json"), "{\"format_version\": 1,").unwrap();
    let err = error_of(load(&f, &out));
    assert!(
        err.contains("manifest.json") && err.contains("line"),
        "{err}"
    );
}

/// LoRA on several projections: scaled, on some layers only, with different ranks, with
/// trained biases (folded into the merged weights too).
const MIXED_LORA: &str = r#"Design(name: "mixed", modules: [
    Module(name: Some("q"), form: Lora(r: 4, alpha: 8.0), site: Projection(Query)),
    Module(name: Some("k"), form: Lora(r: 2, alpha: 2.0), site: Projection(Key), layers: List([1])),
    Module(name: Some("o"), form: Lora(r: 3, alpha: 6.0), site: Projection(FfnOut),
           composition: Some(Scaled(0.5))),
    Module(name: Some("i"), form: Lora(r: 4, alpha: 4.0), site: Projection(FfnIn)),
], unfreeze: [Biases])"#;

#[test]
fn merged_lora_gives_the_unmerged_logits() {
    let f = fixture("merge");
    let batch = batch(&f);
    for design in [preset("lora"), design(MIXED_LORA)] {
        let model = perturbed(&f, &design);
        let out = f.dir.join(format!("{}-merged", design.name));
        let manifest = export_to(&f, &model, &out, ExportFormat::Pets, true).unwrap();
        assert_eq!(manifest.layout, Layout::Merged);
        assert_eq!(manifest.base_model.id, ".");
        assert!(manifest.merged_from.is_some());
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "head.safetensors",
        ] {
            assert!(out.join(file).is_file(), "{file}");
        }
        let loaded = load(&f, &out).unwrap();
        assert!(loaded.model.design.modules.is_empty());
        let diff = max_diff(&logits(&model, &batch), &logits(&loaded.model, &batch));
        assert!(diff <= 1e-4, "{}: max abs diff {diff}", design.name);
    }
}

#[test]
fn designs_that_are_not_plain_lora_refuse_merge_and_peft() {
    let f = fixture("refuse");
    let cases = [
        (preset("mam"), "module prefix: it is a prefix module"),
        (preset("unipelt"), "module prefix: it is a prefix module"),
        (preset("houlsby"), "module attn: it is a bottleneck module"),
        (
            design(
                r#"Design(name: "g", modules: [Module(name: Some("q"), form: Lora(r: 2, alpha: 2.0),
                site: Projection(Query), composition: Some(Gated))])"#,
            ),
            "module q: its composition Gated",
        ),
        (
            design(
                r#"Design(name: "s", modules: [Module(name: Some("f"), form: Lora(r: 2, alpha: 2.0),
                site: Ffn)])"#,
            ),
            "module f: its site is Ffn",
        ),
    ];
    for (design, expected) in cases {
        let model = perturbed(&f, &design);
        for (format, merge, verb) in [
            (ExportFormat::Pets, true, "cannot be merged"),
            (
                ExportFormat::Peft,
                false,
                "cannot be exported in PEFT format",
            ),
        ] {
            let out = f.dir.join("refused");
            let err = error_of(export_to(&f, &model, &out, format, merge));
            assert!(err.contains(verb) && err.contains(expected), "{err}");
            assert!(!out.exists(), "a refused export wrote {}", out.display());
        }
    }
    let model = perturbed(&f, &design(MIXED_LORA));
    let err = error_of(export_to(
        &f,
        &model,
        &f.dir.join("p"),
        ExportFormat::Peft,
        false,
    ));
    assert!(err.contains("backbone parts [Biases]"), "{err}");
}

#[test]
fn an_existing_output_folder_needs_force() {
    let f = fixture("force");
    let model = perturbed(&f, &preset("prefix"));
    let out = f.dir.join("adapter");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("old.txt"), "old").unwrap();
    let err = error_of(export_to(&f, &model, &out, ExportFormat::Pets, false));
    assert!(err.contains("exists and is not empty"), "{err}");
    let mut forced = options(ExportFormat::Pets, false);
    forced.force = true;
    export(&source(&f, &model), &out, &forced, &f.cache).unwrap();
    assert!(!out.join("old.txt").exists() && out.join("manifest.json").exists());
}

#[path = "export/adapterhub.rs"]
mod adapterhub;
#[path = "export/peft.rs"]
mod peft;
#[path = "export/predict.rs"]
mod predict;
