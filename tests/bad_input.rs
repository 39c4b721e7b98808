//! Bad input, tried systematically through the `pets` binary: malformed designs and spaces, bad
//! datasets, broken model folders, unparseable or impossible budgets and options. Each case must
//! exit with status 1, print a message naming the file (and line/column or field) and never panic.

mod binary;

use binary::{pets, scratch, text};
use candle_core::Device;
use pets::backbone::tiny::{tiny_config, tiny_weights, write_tiny_model};
use std::path::{Path, PathBuf};

/// A tiny model folder with one change applied.
fn model_variant(root: &Path, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let dir = root.join(name);
    write_tiny_model(&dir, 0).unwrap();
    change(&dir);
    dir
}

fn write_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut config = serde_json::to_value(tiny_config()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// Sentences labelled by whether they praise (two classes).
fn reviews(n: usize) -> String {
    let mut out = String::from("text\tlabel\n");
    for i in 0..n {
        let (word, label) = if i % 2 == 0 { ("great", "pos") } else { ("awful", "neg") };
        out.push_str(&format!("the film was very {word} .\t{label}\n"));
    }
    out
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Every one of these must appear in the output.
    needles: Vec<String>,
}

/// Runs every case; collects all mismatches so one run shows every broken message.
fn check(cases: &[Case], cache: &Path) {
    let mut failures = Vec::new();
    for case in cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = pets(&args, cache);
        let all = text(&out);
        let missing: Vec<&String> = case.needles.iter().filter(|n| !all.contains(*n)).collect();
        if out.status.code() != Some(1) || all.contains("panicked") || !missing.is_empty() {
            failures.push(format!(
                "{}: status {:?}, missing {missing:?}\n{all}",
                case.name, out.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn malformed_designs_spaces_budgets_and_options() {
    let dir = scratch("bad-ron");
    let model = model_variant(&dir, "model", |_| {});
    let data = dir.join("reviews.tsv");
    std::fs::write(&data, reviews(40)).unwrap();
    let file = |name: &str, body: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    };
    let m = model.to_string_lossy().into_owned();
    let validate = |design: String| vec!["validate".into(), design, "--model".into(), m.clone()];
    let search = |extra: &[&str]| {
        let mut args = s(&["search", "--model", &m, "--task", data.to_str().unwrap()]);
        args.extend(s(&["--storage", dir.join("s.sqlite").to_str().unwrap()]));
        args.extend(s(&["--reports", dir.join("reports").to_str().unwrap(), "--quiet"]));
        args.extend(s(extra));
        args
    };
    let design = |modules: &str| format!("Design(\n  name: \"x\",\n  modules: [\n    {modules}\n  ],\n)");
    let good_design = design("Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Query))");
    let cases = vec![
        Case {
            name: "RON syntax error",
            args: validate(file("syntax.ron", b"Design(name: \"x\", modules: [")),
            needles: s(&["syntax.ron:1:"]),
        },
        Case {
            name: "unknown field",
            args: validate(file("unknown.ron", b"Design(\n  name: \"x\",\n  modulez: [],\n)")),
            needles: s(&["unknown.ron:3:", "modulez"]),
        },
        Case {
            name: "wrong type",
            args: validate(file("type.ron", design("Module(form: Lora(r: \"4\", alpha: 8.0), site: Ffn)").as_bytes())),
            needles: s(&["type.ron:4:"]),
        },
        Case {
            name: "width wider than the hidden size",
            args: validate(file("wide.ron", design("Module(form: Lora(r: 49, alpha: 8.0), site: Projection(Query))").as_bytes())),
            needles: s(&["module m0: field `form.r`: width 49 is wider than the hidden size 48"]),
        },
        Case {
            name: "width zero",
            args: validate(file("zero.ron", design("Module(form: Bottleneck(r: 0, activation: Relu), site: Ffn)").as_bytes())),
            needles: s(&["module m0: field `form.r`: width must be at least 1"]),
        },
        Case {
            name: "width beyond u64",
            args: validate(file("huge.ron", design("Module(form: Prefix(l: 18446744073709551616), site: AttentionHeads)").as_bytes())),
            needles: s(&["huge.ron:4:"]),
        },
        Case {
            name: "prefix reparameterisation beyond any memory",
            args: validate(file("reparam.ron", design("Module(form: Prefix(l: 4, reparam: Some(18446744073709551615)), site: AttentionHeads)").as_bytes())),
            needles: s(&["module m0: field `form.reparam`"]),
        },
        Case {
            name: "prefix on the FFN",
            args: validate(file("combo.ron", design("Module(form: Prefix(l: 4), site: Ffn)").as_bytes())),
            needles: s(&["module m0: field `site`: a prefix modifies per-head attention"]),
        },
        Case {
            name: "two LoRAs on one matrix",
            args: validate(file("two.ron", design("Module(name: Some(\"a\"), form: Lora(r: 4, alpha: 8.0), site: Projection(Query)),\n    Module(name: Some(\"b\"), form: Lora(r: 2, alpha: 8.0), site: Projection(Query))").as_bytes())),
            needles: s(&["modules a and b conflict at layer 0, Projection(Query)"]),
        },
        Case {
            name: "layer out of range",
            args: validate(file("layer.ron", design("Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Value), layers: Range(0, 7))").as_bytes())),
            needles: s(&["module m0: field `layers`: layer 7 is out of range"]),
        },
        Case {
            name: "design file not UTF-8",
            args: validate(file("latin1.ron", b"Design(name: \"caf\xE9\", modules: [])")),
            needles: s(&["latin1.ron", "UTF-8"]),
        },
        Case {
            name: "design file missing",
            args: validate(dir.join("absent.ron").to_string_lossy().into_owned()),
            needles: s(&["absent.ron"]),
        },
        Case {
            name: "space syntax error",
            args: search(&["--space", &file("space.ron", b"SearchSpace(\n  name: \"s\",\n  slots: [")]),
            needles: s(&["space.ron:3:"]),
        },
        Case {
            name: "space unknown field",
            args: search(&["--space", &file("space2.ron", b"SearchSpace(\n  name: \"s\",\n  slotz: [],\n)")]),
            needles: s(&["space2.ron:3:", "slotz"]),
        },
        Case {
            name: "space with an empty slot list",
            args: search(&["--space", &file("space3.ron", b"SearchSpace(name: \"s\", slots: [])")]),
            needles: s(&["search space s: field `slots`: lists no slot"]),
        },
        Case {
            name: "budget that cannot be parsed",
            args: search(&["--budget", "half"]),
            needles: s(&["--budget half: expected a percentage like 0.5% or a count like 120k"]),
        },
        Case {
            name: "budget over 100%",
            args: search(&["--budget", "250%"]),
            needles: s(&["--budget 250%"]),
        },
        Case {
            name: "budget no design fits",
            args: search(&["--budget", "10"]),
            needles: s(&["search space mam: no design fits the budget of 10 trainable parameters", "the cheapest costs"]),
        },
        Case {
            name: "unknown sampler",
            args: search(&["--sampler", "annealing"]),
            needles: s(&["unknown sampler \"annealing\": expected one of random, nsga2"]),
        },
        Case {
            name: "unknown baseline",
            args: search(&["--baselines", "lora,lorax"]),
            needles: s(&["lorax.ron"]),
        },
        Case {
            name: "zero epochs",
            args: {
                let mut a = s(&["train", "--design", &file("ok.ron", good_design.as_bytes()), "--model", &m]);
                a.extend(s(&["--task", data.to_str().unwrap(), "--epochs", "0", "--quiet"]));
                a
            },
            needles: s(&["epochs must be at least 1"]),
        },
    ];
    check(&cases, &dir.join("cache"));
    // None of the refused searches left a study behind that a corrected command would clash with.
    let leftover = pets::search::store::Store::open(&dir.join("s.sqlite"))
        .and_then(|s| s.study_names())
        .unwrap_or_default();
    assert!(leftover.is_empty(), "{leftover:?}");
}

#[test]
fn bad_datasets_and_model_folders() {
    let dir = scratch("bad-data");
    let model = model_variant(&dir, "model", |_| {});
    let design = dir.join("lora.ron");
    std::fs::write(
        &design,
        "Design(name: \"l\", modules: [Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Query))])",
    )
    .unwrap();
    let file = |name: &str, body: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    };
    let good = file("reviews.tsv", reviews(40).as_bytes());
    // `pets train` with one step: every case fails before or at loading.
    let train = |model: &Path, task: &str, extra: &[&str]| {
        let mut args = s(&["train", "--design", design.to_str().unwrap(), "--model"]);
        args.push(model.to_string_lossy().into_owned());
        args.extend(s(&["--task", task, "--max-steps", "1", "--epochs", "1", "--quiet"]));
        args.extend(s(extra));
        args
    };
    let cols = ["--text-column", "text", "--label-column", "label"];
    let long = format!("text\tlabel\n{}\tpos\nshort\tneg\nok\tpos\nfine\tneg\n", "the film ".repeat(40));
    let cases = vec![
        Case {
            name: "empty file",
            args: train(&model, &file("empty.tsv", b""), &cols),
            needles: s(&["empty.tsv: no examples"]),
        },
        Case {
            name: "header only",
            args: train(&model, &file("header.csv", b"text,label\n"), &cols),
            needles: s(&["header.csv: no examples"]),
        },
        Case {
            name: "one class",
            args: train(&model, &file("one.tsv", b"text\tlabel\na\tpos\nb\tpos\nc\tpos\n"), &cols),
            needles: s(&["one.tsv: every example has label 'pos'; a classifier needs at least two classes"]),
        },
        Case {
            name: "missing label column",
            args: train(&model, &file("nolabel.csv", b"text,sentiment\na,1\nb,0\n"), &cols),
            needles: s(&["nolabel.csv: no column 'label' (columns: text, sentiment)"]),
        },
        Case {
            name: "wrong --text-column",
            args: train(&model, &good, &["--text-column", "sentence", "--label-column", "label"]),
            needles: s(&["reviews.tsv: no column 'sentence' (columns: text, label)"]),
        },
        Case {
            name: "text that is not UTF-8",
            args: train(&model, &file("latin1.csv", b"text,label\nok,1\ncaf\xE9,0\n"), &cols),
            needles: s(&["latin1.csv line 3: not valid UTF-8"]),
        },
        Case {
            name: "JSON lines with a broken line",
            args: train(&model, &file("broken.jsonl", b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \n"), &cols),
            needles: s(&["broken.jsonl line 2: invalid JSON"]),
        },
        Case {
            name: "row with too few fields",
            args: train(&model, &file("short.tsv", b"text\tlabel\na\tpos\nb\n"), &cols),
            needles: s(&["short.tsv line 3: missing field 'label'"]),
        },
        Case {
            name: "unknown file type",
            args: train(&model, &file("data.txt", b"text,label\n"), &cols),
            needles: s(&["unknown task '", "data.txt'", "a file must end in .csv, .tsv, .jsonl or .json"]),
        },
        Case {
            name: "model folder missing",
            args: train(&dir.join("no-model"), &good, &cols),
            needles: s(&["no-model"]),
        },
        Case {
            name: "config.json missing",
            args: train(&model_variant(&dir, "m-noconfig", |d| std::fs::remove_file(d.join("config.json")).unwrap()), &good, &cols),
            needles: s(&["m-noconfig/config.json"]),
        },
        Case {
            name: "config.json not JSON",
            args: train(&model_variant(&dir, "m-badjson", |d| std::fs::write(d.join("config.json"), "{\"vocab_size\": 64,").unwrap()), &good, &cols),
            needles: s(&["m-badjson/config.json: line 1 column"]),
        },
        Case {
            name: "config.json missing a field",
            args: train(&model_variant(&dir, "m-nofield", |d| write_config(d, |c| { c.as_object_mut().unwrap().remove("hidden_size"); })), &good, &cols),
            needles: s(&["m-nofield/config.json", "hidden_size"]),
        },
        Case {
            name: "more layers in config.json than tensors",
            args: train(&model_variant(&dir, "m-layers", |d| write_config(d, |c| c["num_hidden_layers"] = 3.into())), &good, &cols),
            needles: s(&["m-layers/model.safetensors", "encoder.layer.2."]),
        },
        Case {
            name: "tensor shapes do not match config.json",
            args: train(&model_variant(&dir, "m-hidden", |d| write_config(d, |c| c["intermediate_size"] = 128.into())), &good, &cols),
            needles: s(&["m-hidden/model.safetensors", "shape"]),
        },
        Case {
            name: "a tensor missing",
            args: train(&model_variant(&dir, "m-tensor", |d| {
                let mut w = tiny_weights(&tiny_config(), 0, &Device::Cpu).unwrap();
                w.remove("encoder.layer.1.output.dense.weight");
                candle_core::safetensors::save(&w, d.join("model.safetensors")).unwrap();
            }), &good, &cols),
            needles: s(&["m-tensor/model.safetensors", "encoder.layer.1.output.dense.weight"]),
        },
        Case {
            name: "truncated safetensors",
            args: train(&model_variant(&dir, "m-trunc", |d| {
                let path = d.join("model.safetensors");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            }), &good, &cols),
            needles: s(&["m-trunc/model.safetensors"]),
        },
        Case {
            name: "corrupt safetensors header",
            args: train(&model_variant(&dir, "m-corrupt", |d| std::fs::write(d.join("model.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").unwrap()), &good, &cols),
            needles: s(&["m-corrupt/model.safetensors"]),
        },
        Case {
            name: "model.safetensors missing",
            args: train(&model_variant(&dir, "m-noweights", |d| std::fs::remove_file(d.join("model.safetensors")).unwrap()), &good, &cols),
            needles: s(&["m-noweights/model.safetensors"]),
        },
        Case {
            name: "tokenizer.json missing",
            args: train(&model_variant(&dir, "m-notok", |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap()), &good, &cols),
            needles: s(&["m-notok/tokenizer.json"]),
        },
        Case {
            name: "tokenizer.json corrupt",
            args: train(&model_variant(&dir, "m-badtok", |d| std::fs::write(d.join("tokenizer.json"), "{\"version\": ").unwrap()), &good, &cols),
            needles: s(&["m-badtok/tokenizer.json"]),
        },
        Case {
            name: "tokenizer vocabulary larger than the embeddings",
            args: train(&model_variant(&dir, "m-vocab", |d| {
                let mut config = tiny_config();
                config.vocab_size = 8;
                std::fs::write(d.join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
                let w = tiny_weights(&config, 0, &Device::Cpu).unwrap();
                candle_core::safetensors::save(&w, d.join("model.safetensors")).unwrap();
            }), &good, &cols),
            needles: s(&["m-vocab", "tokenizer.json", "vocab_size 8"]),
        },
        Case {
            name: "texts longer than the model's positions",
            args: train(&model, &file("long.tsv", long.as_bytes()), &cols),
            needles: s(&["max_position_embeddings 32", "--max-len"]),
        },
    ];
    check(&cases, &dir.join("cache"));
}

#[test]
fn labels_unseen_in_training_are_refused_by_predict() {
    let dir = scratch("bad-unseen");
    let model = model_variant(&dir, "model", |_| {});
    let data = dir.join("reviews.tsv");
    std::fs::write(&data, reviews(40)).unwrap();
    let (run, adapter) = (dir.join("run"), dir.join("adapter"));
    let cache = dir.join("cache");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let out = pets(
        &[
            "train", "--design", "search_spaces/presets/lora.ron", "--model", &path(&model),
            "--task", &path(&data), "--max-steps", "2", "--epochs", "1", "--quiet",
            "--out", &path(&run),
        ],
        &cache,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = pets(&["export", "--run", &path(&run), "--out", &path(&adapter)], &cache);
    assert!(out.status.success(), "{}", text(&out));
    let unseen = dir.join("unseen.tsv");
    std::fs::write(&unseen, "text\tlabel\ngreat\tpos\nso so\tmeh\n").unwrap();
    let cases = vec![
        Case {
            name: "a label the adapter never saw",
            args: s(&["predict", "--adapter", &path(&adapter), "--input", &path(&unseen), "--evaluate"]),
            needles: s(&["unseen.tsv line 3", "\"meh\""]),
        },
        Case {
            name: "an input file without the text column",
            args: s(&["predict", "--adapter", &path(&adapter), "--input", &path(&unseen), "--text-column", "review"]),
            needles: s(&["unseen.tsv: no column 'review' (columns: text, label)"]),
        },
        Case {
            name: "an adapter folder with a truncated safetensors",
            args: {
                let file = adapter.join("adapter.safetensors");
                let bytes = std::fs::read(&file).unwrap();
                std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
                s(&["predict", "--adapter", &path(&adapter), "--text", "great"])
            },
            needles: s(&["adapter.safetensors"]),
        },
    ];
    check(&cases, &cache);
}
