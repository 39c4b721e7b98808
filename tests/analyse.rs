//! `pets analyse layers|noise|init` end to end on a tiny model and a labelled file: the reports'
//! files, their row counts and headers, and values checked against independent computations
//! (the run's own accuracy, the frozen encoder with the trained head, the init runs' metrics).

mod binary;

use binary::{pets, scratch, text as log};
use pets::batch::TokenizedSplit;
use pets::data::{load_task, SplitOptions, TaskSource};
use pets::model::AdaptedModel;
use pets::spec::Design;
use std::path::{Path, PathBuf};

/// Sentences labelled by whether they praise, with the given class names.
fn write_reviews(path: &Path, n: usize, (pos, neg): (&str, &str)) {
    let mut out = String::from("text\tlabel\n");
    for i in 0..n {
        let (word, label) = if i % 2 == 0 {
            ("great", pos)
        } else {
            ("dull", neg)
        };
        out.push_str(&format!("the film number {i} was {word} .\t{label}\n"));
    }
    std::fs::write(path, out).expect("data file");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn metrics_accuracy(run: &Path) -> f64 {
    let m: serde_json::Value =
        serde_json::from_str(&read(&run.join("metrics.json"))).expect("json");
    m["accuracy"].as_f64().expect("accuracy")
}

/// The dev accuracy of the frozen tiny encoder with only the run's trained head on top: built
/// as a design without modules, so no ablation code is involved.
fn frozen_with_head(model: &Path, data: &Path, run: &Path) -> f64 {
    let device = candle_core::Device::Cpu;
    let encoder = pets::backbone::encoder::Encoder::from_folder(model, &device).expect("encoder");
    let empty = Design {
        name: "head-only".into(),
        modules: vec![],
        unfreeze: vec![],
        learning_rate: None,
    };
    let probe = AdaptedModel::build(encoder, &empty, 2, 0).expect("head-only model");
    let tensors =
        candle_core::safetensors::load(run.join("adapter.safetensors"), &device).expect("tensors");
    probe.store.load(&tensors).expect("head tensors");
    let source = TaskSource::File {
        path: data.to_path_buf(),
        text_column: "text".into(),
        label_column: "label".into(),
    };
    let cache = pets::assets::Cache::at(model.join("unused-cache"));
    let dataset = load_task(&source, &cache, &SplitOptions::default()).expect("task");
    let text = pets::tokenize::TextEncoder::from_file(&model.join("tokenizer.json"), 64)
        .expect("tokenizer");
    let dev: TokenizedSplit = text.encode_split(&dataset.dev).expect("dev");
    pets::train::evaluate(&probe, &dev, text.pad_id, &device, 64)
        .expect("evaluate")
        .accuracy
}

struct Fixture {
    dir: PathBuf,
    model: PathBuf,
    data: PathBuf,
    run: PathBuf,
}

/// A tiny model, 200 labelled sentences, and MAM trained on them for two epochs.
fn fixture(name: &str) -> Fixture {
    let dir = scratch(name);
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).expect("tiny model");
    let data = dir.join("reviews.tsv");
    write_reviews(&data, 200, ("pos", "neg"));
    let run = dir.join("run");
    let mam = Path::new(env!("CARGO_MANIFEST_DIR")).join("search_spaces/presets/mam.ron");
    let out = pets(
        &[
            "train",
            "--design",
            s(&mam),
            "--model",
            s(&model),
            "--task",
            s(&data),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--epochs",
            "2",
            "--lr",
            "0.01",
            "--batch-size",
            "16",
            "--quiet",
            "--out",
            s(&run),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", log(&out));
    Fixture {
        dir,
        model,
        data,
        run,
    }
}

#[test]
fn layers_and_noise_on_a_trained_run_of_a_user_data_file() {
    let f = fixture("analyse-layers");
    let reports = f.dir.join("reports");
    let task = [
        "--task",
        s(&f.data),
        "--text-column",
        "text",
        "--label-column",
        "label",
    ];
    let mut args = vec![
        "analyse",
        "layers",
        "--run",
        s(&f.run),
        "--reports",
        s(&reports),
    ];
    args.extend(task);
    let out = pets(&args, &f.dir);
    assert!(out.status.success(), "{}", log(&out));

    // Tiny encoder: 2 layers → spans (0,0), (0,1), (1,1).
    let csv = read(&reports.join("mam-layers.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "first,last,accuracy,drop_from_full");
    let spans: Vec<(String, f64, f64)> = lines[1..]
        .iter()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                format!("{}-{}", c[0], c[1]),
                c[2].parse().expect("acc"),
                c[3].parse().expect("drop"),
            )
        })
        .collect();
    let names: Vec<&str> = spans.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(names, ["0-0", "0-1", "1-1"]);
    let trained = metrics_accuracy(&f.run);
    for (name, acc, drop) in &spans {
        assert!(
            (acc + drop - trained).abs() < 2e-6,
            "{name}: {acc} + {drop} != {trained}"
        );
    }
    // Every layer off is the frozen encoder with the trained head, computed without ablation.
    let frozen = frozen_with_head(&f.model, &f.data, &f.run);
    assert_eq!(
        format!("{:.6}", spans[1].1),
        format!("{frozen:.6}"),
        "{csv}"
    );
    let md = read(&reports.join("mam-layers.md"));
    assert!(
        md.contains(&format!("All modules on: **{trained:.4}**")),
        "{md}"
    );
    assert!(md.contains(&format!("all off: **{frozen:.4}**")), "{md}");
    assert!(read(&reports.join("mam-layers.svg")).starts_with("<svg"));

    let mut args = vec![
        "analyse",
        "noise",
        "--run",
        s(&f.run),
        "--reports",
        s(&reports),
    ];
    args.extend(task);
    args.extend(["--sigmas", "0,1e-3,10", "--draws", "2"]);
    let out = pets(&args, &f.dir);
    assert!(out.status.success(), "{}", log(&out));
    let csv = read(&reports.join("mam-noise.csv"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(csv.starts_with("sigma,draw,accuracy\n"), "{csv}");
    assert_eq!(rows.len(), 3 * 2, "{csv}");
    let sigmas: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(sigmas, ["0e0", "0e0", "1e-3", "1e-3", "1e1", "1e1"]);
    // No noise is the trained model itself.
    for r in &rows[..2] {
        assert_eq!(r[2], format!("{trained:.6}"), "{csv}");
    }
    assert!(read(&reports.join("mam-noise.svg")).starts_with("<svg"));
}

#[test]
fn a_task_with_other_classes_is_refused_naming_the_run_and_the_task() {
    let f = fixture("analyse-mismatch");
    let other = f.dir.join("other.tsv");
    write_reviews(&other, 40, ("good", "bad"));
    let out = pets(
        &[
            "analyse",
            "layers",
            "--run",
            s(&f.run),
            "--task",
            s(&other),
            "--reports",
            s(&f.dir),
        ],
        &f.dir,
    );
    assert!(!out.status.success());
    let text = log(&out);
    for want in [
        format!("run {} was trained on classes", f.run.display()),
        format!("task {} has classes", other.display()),
    ] {
        assert!(text.contains(&want), "{want} missing: {text}");
    }
    assert!(!text.contains("internal inconsistency"), "{text}");
}

#[test]
fn init_sweep_trains_each_std_resumes_and_reports() {
    let dir = scratch("analyse-init");
    let model = dir.join("model");
    pets::backbone::tiny::write_tiny_model(&model, 0).expect("tiny model");
    let data = dir.join("reviews.tsv");
    write_reviews(&data, 120, ("pos", "neg"));
    let houlsby = Path::new(env!("CARGO_MANIFEST_DIR")).join("search_spaces/presets/houlsby.ron");
    let (runs, reports) = (dir.join("runs"), dir.join("reports"));
    let args = [
        "analyse",
        "init",
        "--design",
        s(&houlsby),
        "--model",
        s(&model),
        "--task",
        s(&data),
        "--text-column",
        "text",
        "--label-column",
        "label",
        "--stds",
        "1e-3,1e-1",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--jobs",
        "2",
        "--runs",
        s(&runs),
        "--reports",
        s(&reports),
    ];
    let out = pets(&args, &dir);
    assert!(out.status.success(), "{}", log(&out));
    assert!(
        log(&out).contains("2 runs trained, 0 reused"),
        "{}",
        log(&out)
    );

    // Each run trained the design with every module at that std, and the CSV holds its accuracy.
    let csv = read(&reports.join("houlsby-init.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2, "{csv}");
    assert_eq!(lines[0], "variant,std,seed,accuracy");
    for (line, std, label) in [
        (lines[1], 1e-3f64, "houlsby-std1e-3-steps3"),
        (lines[2], 1e-1, "houlsby-std1e-1-steps3"),
    ] {
        let run = runs.join("reviews").join(label).join("seed0");
        let design = Design::from_file(&run.join("design.ron")).expect("design");
        let init = pets::spec::Init::Normal(std as f32);
        assert!(design.modules.iter().all(|m| m.init == init), "{design:?}");
        let want = format!("normal,{std:e},0,{:.6}", metrics_accuracy(&run));
        assert_eq!(line, want, "{csv}");
    }
    let md = read(&reports.join("houlsby-init.md"));
    for want in [
        "Generated by `",
        "analyse init --design",
        "| 1e-3 (as written) |",
        "| 1e-1 |",
        "W_down and W_up ~ N(0, std²), biases zero; as written: N(0, 0.001²)",
        "cut to 3 steps",
    ] {
        assert!(md.contains(want), "{want} missing:\n{md}");
    }
    assert!(read(&reports.join("houlsby-init.svg")).starts_with("<svg"));

    // A second call reuses both runs.
    let out = pets(&args, &dir);
    assert!(
        log(&out).contains("0 runs trained, 2 reused"),
        "{}",
        log(&out)
    );
}
