use super::report::{utc_timestamp, LOSS_TOLERANCE};
use super::*;
use crate::assets::TestDir;
use crate::backbone::tiny::{tiny_encoder, write_tiny_model};
use crate::error::io_err;
use crate::spec::{parse_ron, Composition};

/// Every module form and composition the reference models, on several sites.
const EVERY_FORM: &str = r#"Design(name: "every_form", modules: [
    Module(name: Some("q"), form: Lora(r: 4, alpha: 8.0), site: Projection(Query), init: Normal(0.1)),
    Module(name: Some("o"), form: Lora(r: 2, alpha: 2.0), site: Projection(Output), init: Normal(0.1),
           composition: Some(Scaled(2.0))),
    Module(name: Some("pre"), form: Prefix(l: 3), site: AttentionHeads, layers: List([1])),
    Module(name: Some("att"), form: Bottleneck(r: 8, activation: Gelu), site: Attention,
           insertion: Sequential, composition: Some(LearnedScale(0.5)), init: Normal(0.1)),
    Module(name: Some("fin"), form: Lora(r: 2, alpha: 4.0), site: Projection(FfnIn), init: Normal(0.1)),
    Module(name: Some("fout"), form: Bottleneck(r: 4, activation: Tanh), site: Projection(FfnOut),
           insertion: Sequential, init: Normal(0.1)),
    Module(name: Some("ffn"), form: Bottleneck(r: 6, activation: Relu), site: Ffn,
           composition: Some(Gated), init: Normal(0.1)),
    Module(name: Some("ffn2"), form: Bottleneck(r: 4, activation: Silu), site: Ffn,
           composition: Some(Scaled(4.0)), layers: Range(0, 0)),
])"#;

fn settings(work: &Path, python: PathBuf) -> BenchSettings {
    BenchSettings {
        model: "tiny".into(),
        task: "mr".into(),
        batch_size: 3,
        max_len: 16,
        batches: 2,
        rounds: 1,
        check_steps: 4,
        lr: Some(1e-2),
        weight_decay: 0.01,
        max_grad_norm: 1.0,
        seed: 0,
        device: Device::Cpu,
        threads: 1,
        python,
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/reference.py"),
        work: work.to_path_buf(),
    }
}

fn batches() -> candle_core::Result<Vec<Batch>> {
    let split = TokenizedSplit {
        ids: vec![
            vec![1, 5, 9, 2],
            vec![1, 7, 2],
            vec![1, 4, 4, 8, 11, 2],
            vec![1, 2],
            vec![1, 30, 31, 32, 2],
            vec![1, 12, 2],
        ],
        labels: vec![0, 1, 1, 0, 1, 0],
    };
    [[0, 1, 2], [3, 4, 5]]
        .iter()
        .map(|ix| make_batch(&split, ix, 0, &Device::Cpu))
        .collect()
}

#[test]
fn plan_and_tensors_round_trip() -> crate::Result<()> {
    let dir = TestDir::new("bench-plan");
    let design: Design = parse_ron(EVERY_FORM, "test")?;
    let model = AdaptedModel::build(tiny_encoder(1)?, &design, 2, 0)?;
    let s = settings(&dir.0, PathBuf::from("python3"));
    let plan = make_plan(&design, &model, &dir.0, &s, 1e-2)?;
    let batches = batches()?;
    write_plan(&dir.0, &plan, &model.store, &batches)?;

    let text = std::fs::read_to_string(dir.0.join("plan.json")).map_err(io_err("reading"))?;
    let back: Plan =
        serde_json::from_str(&text).map_err(|e| crate::Error::Internal(e.to_string()))?;
    assert_eq!(back, plan);
    let sites: Vec<&str> = plan.modules.iter().map(|m| m.site.as_str()).collect();
    assert_eq!(
        sites,
        [
            "query",
            "output",
            "heads",
            "attention",
            "ffn_in",
            "ffn_out",
            "ffn",
            "ffn"
        ]
    );
    assert_eq!(plan.modules[2].layers, vec![1]);
    assert_eq!(plan.modules[7].layers, vec![0]);
    assert_eq!(plan.modules[6].composition, Composition::Gated);
    assert_eq!(
        plan.modules[2].composition,
        Composition::Gated,
        "a prefix's own gate"
    );

    let tensors = candle_core::safetensors::load(dir.0.join(&plan.tensors), &Device::Cpu)?;
    for (name, var) in model.store.named() {
        let saved = &tensors[name];
        let diff = (saved - var.as_tensor())?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "{name}");
    }
    for (i, b) in batches.iter().enumerate() {
        let ids = &tensors[&format!("batch.{i}.input_ids")];
        assert_eq!(ids.dtype(), DType::I64);
        let ids: Vec<Vec<i64>> = ids.to_vec2()?;
        let want: Vec<Vec<u32>> = b.input_ids.to_vec2()?;
        let want: Vec<Vec<i64>> = want
            .iter()
            .map(|r| r.iter().map(|&x| x.into()).collect())
            .collect();
        assert_eq!(ids, want);
        let mask: Vec<Vec<f32>> = tensors[&format!("batch.{i}.attention_mask")].to_vec2()?;
        assert_eq!(mask, b.attention_mask.to_vec2::<f32>()?);
        let labels: Vec<i64> = tensors[&format!("batch.{i}.labels")].to_vec1()?;
        assert_eq!(labels.len(), b.size);
    }
    assert_eq!(tensors.len(), model.store.named().len() + 3 * batches.len());
    Ok(())
}

#[test]
fn medians_and_speedups() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    assert!(median(&[]).is_nan());
    let side = Side {
        pets: 80.0,
        reference: 100.0,
    };
    assert_eq!(side.speedup(), 1.25);
    let losses = Side {
        pets: vec![0.7, 0.66],
        reference: vec![0.7, 0.6],
    };
    let rel = losses.relative_diffs();
    assert_eq!(rel[0], 0.0);
    assert!((rel[1] - 0.1).abs() < 1e-12);
}

fn row(pets_ms: f64, torch_ms: f64, losses: (f64, f64)) -> BenchRow {
    BenchRow {
        design: "d".into(),
        trainable: 1,
        percent: 0.5,
        lr: 5e-4,
        forward_rounds: Side::default(),
        train_rounds: Side {
            pets: vec![pets_ms, pets_ms * 3.0, pets_ms / 2.0],
            reference: vec![torch_ms],
        },
        losses: Side {
            pets: vec![losses.0],
            reference: vec![losses.1],
        },
        logits_max_diff: 0.0,
        seq_lens: vec![],
        frozen_layers: 0,
    }
}

#[test]
fn verdict_says_whether_the_target_is_met_and_by_how_much() {
    let met = verdict(&row(100.0, 150.0, (0.69, 0.69)));
    assert!(
        met.contains("losses agree") && met.contains("target met: 1.50×"),
        "{met}"
    );
    assert!(met.contains("20% above"), "{met}");
    let missed = verdict(&row(200.0, 100.0, (0.69, 0.69)));
    assert!(
        missed.contains("target missed: 0.50×") && missed.contains("2.50× faster"),
        "{missed}"
    );
    assert!(missed.contains("80.0 ms instead of 200.0"), "{missed}");
    let off = verdict(&row(
        100.0,
        150.0,
        (0.69, 0.69 * (1.0 + 3.0 * LOSS_TOLERANCE)),
    ));
    assert!(off.contains("DISAGREE"), "{off}");
}

#[test]
fn utc_timestamps() {
    assert_eq!(utc_timestamp(0), "1970-01-01 00:00 UTC");
    assert_eq!(
        utc_timestamp(951_782_400 + 3_600 + 120),
        "2000-02-29 01:02 UTC"
    );
    assert_eq!(utc_timestamp(1_767_225_599), "2025-12-31 23:59 UTC");
}

#[test]
fn candle_version_matches_the_manifest() {
    let manifest = include_str!("../../Cargo.toml");
    let pin = format!("candle-core = \"{CANDLE_VERSION}\"");
    assert!(manifest.contains(&pin), "Cargo.toml has no {pin}");
}

/// The reference against pets on a tiny random BERT with every supported form: same logits and
/// losses. Needs torch: skipped (with a message) unless `.venv-bench` exists (scripts/bench-setup.sh)
/// or `PETS_BENCH_PYTHON` names an interpreter with torch.
#[test]
fn reference_matches_pets_on_a_tiny_model() -> crate::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("PETS_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-bench/bin/python"));
    if !python.exists() && std::env::var_os("PETS_BENCH_PYTHON").is_none() {
        eprintln!(
            "skipped: no {} (run scripts/bench-setup.sh)",
            python.display()
        );
        return Ok(());
    }
    let dir = TestDir::new("bench-reference");
    let model_dir = dir.0.join("model");
    write_tiny_model(&model_dir, 3)?;
    let design: Design = parse_ron(EVERY_FORM, "test")?;
    let s = settings(&dir.0.join("work"), python);
    let encoder = Encoder::from_folder(&model_dir, &Device::Cpu)?;
    let (mut pets, mut reference, ready) = start(&design, encoder, batches()?, &model_dir, &s)?;
    assert!(ready.torch.starts_with('2'), "{}", ready.torch);
    let (losses, logits_diff) = check(&mut pets, &mut reference, s.check_steps)?;
    assert!(logits_diff < 1e-5, "logits differ by {logits_diff}");
    let rel = losses.relative_diffs();
    assert!(rel.iter().all(|&d| d < 1e-5), "{losses:?}: {rel:?}");
    // The losses move: the steps really train (and so the check compares training).
    assert!((losses.pets[0] - losses.pets[2]).abs() > 1e-3, "{losses:?}");
    assert!(reference.time(true, 2)? > 0.0);
    Ok(())
}
