//! Bad input through the `pets` binary, part 2: datasets (empty, one class, missing columns,
//! non-UTF-8, broken rows), model folders (missing or mismatched config, tensors, safetensors,
//! tokenizer) and labels unseen in training. Each exits with status 1 and a message naming the
//! file (and line or tensor); none panics.

mod bad_input;
mod binary;

use bad_input::{check, model_variant, reviews, s, write_config, Case};
use binary::{pets, scratch, text};
use candle_core::Device;
use pets::backbone::tiny::{tiny_config, tiny_weights};
use std::path::Path;

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
        args.extend(s(&[
            "--task",
            task,
            "--max-steps",
            "1",
            "--epochs",
            "1",
            "--quiet",
        ]));
        args.extend(s(extra));
        args
    };
    let cols = ["--text-column", "text", "--label-column", "label"];
    let long = format!(
        "text\tlabel\n{}\tpos\nshort\tneg\nok\tpos\nfine\tneg\n",
        "the film ".repeat(40)
    );
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
            args: train(
                &model,
                &file("one.tsv", b"text\tlabel\na\tpos\nb\tpos\nc\tpos\n"),
                &cols,
            ),
            needles: s(&[
                "one.tsv: every example has label 'pos'; a classifier needs at least two classes",
            ]),
        },
        Case {
            name: "missing label column",
            args: train(
                &model,
                &file("nolabel.csv", b"text,sentiment\na,1\nb,0\n"),
                &cols,
            ),
            needles: s(&["nolabel.csv: no column 'label' (columns: text, sentiment)"]),
        },
        Case {
            name: "wrong --text-column",
            args: train(
                &model,
                &good,
                &["--text-column", "sentence", "--label-column", "label"],
            ),
            needles: s(&["reviews.tsv: no column 'sentence' (columns: text, label)"]),
        },
        Case {
            name: "text that is not UTF-8",
            args: train(
                &model,
                &file("latin1.csv", b"text,label\nok,1\ncaf\xE9,0\n"),
                &cols,
            ),
            needles: s(&["latin1.csv line 3: not valid UTF-8"]),
        },
        Case {
            name: "JSON lines with a broken line",
            args: train(
                &model,
                &file(
                    "broken.jsonl",
                    b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \n",
                ),
                &cols,
            ),
            needles: s(&["broken.jsonl line 2: invalid JSON"]),
        },
        Case {
            name: "row with too few fields",
            args: train(
                &model,
                &file("short.tsv", b"text\tlabel\na\tpos\nb\n"),
                &cols,
            ),
            needles: s(&["short.tsv line 3: missing field 'label'"]),
        },
        Case {
            name: "unknown file type",
            args: train(&model, &file("data.txt", b"text,label\n"), &cols),
            needles: s(&[
                "unknown task '",
                "data.txt'",
                "a file must end in .csv, .tsv, .jsonl or .json",
            ]),
        },
        Case {
            name: "model folder missing",
            args: train(&dir.join("no-model"), &good, &cols),
            needles: s(&["no-model"]),
        },
        Case {
            name: "config.json missing",
            args: train(
                &model_variant(&dir, "m-noconfig", |d| {
                    std::fs::remove_file(d.join("config.json")).unwrap()
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-noconfig/config.json"]),
        },
        Case {
            name: "config.json not JSON",
            args: train(
                &model_variant(&dir, "m-badjson", |d| {
                    std::fs::write(d.join("config.json"), "{\"vocab_size\": 64,").unwrap()
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-badjson/config.json: line 1 column"]),
        },
        Case {
            name: "config.json missing a field",
            args: train(
                &model_variant(&dir, "m-nofield", |d| {
                    write_config(d, |c| {
                        c.as_object_mut().unwrap().remove("hidden_size");
                    })
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-nofield/config.json", "hidden_size"]),
        },
        Case {
            name: "a model type pets does not implement",
            args: train(
                &model_variant(&dir, "m-roberta", |d| {
                    write_config(d, |c| c["model_type"] = "roberta".into())
                }),
                &good,
                &cols,
            ),
            needles: s(&[
                "m-roberta/config.json",
                "model_type \"roberta\" is not implemented: pets runs BERT encoders",
            ]),
        },
        Case {
            name: "more layers in config.json than tensors",
            args: train(
                &model_variant(&dir, "m-layers", |d| {
                    write_config(d, |c| c["num_hidden_layers"] = 3.into())
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-layers/model.safetensors", "encoder.layer.2."]),
        },
        Case {
            name: "tensor shapes do not match config.json",
            args: train(
                &model_variant(&dir, "m-hidden", |d| {
                    write_config(d, |c| c["intermediate_size"] = 128.into())
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-hidden/model.safetensors", "shape"]),
        },
        Case {
            name: "a tensor missing",
            args: train(
                &model_variant(&dir, "m-tensor", |d| {
                    let mut w = tiny_weights(&tiny_config(), 0, &Device::Cpu).unwrap();
                    w.remove("encoder.layer.1.output.dense.weight");
                    candle_core::safetensors::save(&w, d.join("model.safetensors")).unwrap();
                }),
                &good,
                &cols,
            ),
            needles: s(&[
                "m-tensor/model.safetensors",
                "encoder.layer.1.output.dense.weight",
            ]),
        },
        Case {
            name: "truncated safetensors",
            args: train(
                &model_variant(&dir, "m-trunc", |d| {
                    let path = d.join("model.safetensors");
                    let bytes = std::fs::read(&path).unwrap();
                    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-trunc/model.safetensors"]),
        },
        Case {
            name: "corrupt safetensors header",
            args: train(
                &model_variant(&dir, "m-corrupt", |d| {
                    std::fs::write(
                        d.join("model.safetensors"),
                        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header",
                    )
                    .unwrap()
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-corrupt/model.safetensors"]),
        },
        Case {
            name: "model.safetensors missing",
            args: train(
                &model_variant(&dir, "m-noweights", |d| {
                    std::fs::remove_file(d.join("model.safetensors")).unwrap()
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-noweights/model.safetensors"]),
        },
        Case {
            name: "tokenizer.json missing",
            args: train(
                &model_variant(&dir, "m-notok", |d| {
                    std::fs::remove_file(d.join("tokenizer.json")).unwrap()
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-notok/tokenizer.json"]),
        },
        Case {
            name: "tokenizer.json corrupt",
            args: train(
                &model_variant(&dir, "m-badtok", |d| {
                    std::fs::write(d.join("tokenizer.json"), "{\"version\": ").unwrap()
                }),
                &good,
                &cols,
            ),
            needles: s(&["m-badtok/tokenizer.json"]),
        },
        Case {
            name: "tokenizer vocabulary larger than the embeddings",
            args: train(
                &model_variant(&dir, "m-vocab", |d| {
                    let mut config = tiny_config();
                    config.vocab_size = 8;
                    std::fs::write(
                        d.join("config.json"),
                        serde_json::to_string(&config).unwrap(),
                    )
                    .unwrap();
                    let w = tiny_weights(&config, 0, &Device::Cpu).unwrap();
                    candle_core::safetensors::save(&w, d.join("model.safetensors")).unwrap();
                }),
                &good,
                &cols,
            ),
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
            "train",
            "--design",
            "search_spaces/presets/lora.ron",
            "--model",
            &path(&model),
            "--task",
            &path(&data),
            "--max-steps",
            "2",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            &path(&run),
        ],
        &cache,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = pets(
        &["export", "--run", &path(&run), "--out", &path(&adapter)],
        &cache,
    );
    assert!(out.status.success(), "{}", text(&out));
    let unseen = dir.join("unseen.tsv");
    std::fs::write(&unseen, "text\tlabel\ngreat\tpos\nso so\tmeh\n").unwrap();
    let cases = vec![
        Case {
            name: "a label the adapter never saw",
            args: s(&[
                "predict",
                "--adapter",
                &path(&adapter),
                "--input",
                &path(&unseen),
                "--evaluate",
            ]),
            needles: s(&["unseen.tsv line 3", "\"meh\""]),
        },
        Case {
            name: "an input file without the text column",
            args: s(&[
                "predict",
                "--adapter",
                &path(&adapter),
                "--input",
                &path(&unseen),
                "--text-column",
                "review",
            ]),
            needles: s(&["unseen.tsv: no column 'review' (columns: text, label)"]),
        },
    ];
    // Labels as class numbers (as the mr source numbers its classes 0 and 1): with no numbering
    // recorded the error says how to rewrite them...
    let numbered = dir.join("numbered.tsv");
    std::fs::write(&numbered, "text\tlabel\ngreat\t1\nawful\t0\n").unwrap();
    let evaluate = s(&[
        "predict",
        "--adapter",
        &path(&adapter),
        "--input",
        &path(&numbered),
        "--evaluate",
    ]);
    let mut cases = cases;
    cases.push(Case {
        name: "class numbers with no numbering recorded",
        args: evaluate.clone(),
        needles: s(&[
            "numbered.tsv line 2: label \"1\" is not one of the adapter's labels (neg, pos)",
            "rewrite its labels as 0 → neg, 1 → pos",
        ]),
    });
    check(&cases, &cache);
    // ... and once the run records the task's source labels (as every mr run does), they count.
    let manifest_path = adapter.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    assert_eq!(
        manifest["metrics"]["source_labels"],
        serde_json::json!(["neg", "pos"])
    );
    manifest["metrics"]["source_labels"] = serde_json::json!(["0", "1"]);
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let args: Vec<&str> = evaluate.iter().map(String::as_str).collect();
    let out = pets(&args, &cache);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("/2) on "), "{}", text(&out));
    // The same adapter once its tensors are cut short.
    let file = adapter.join("adapter.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    let truncated = Case {
        name: "an adapter folder with a truncated safetensors",
        args: s(&["predict", "--adapter", &path(&adapter), "--text", "great"]),
        needles: s(&[
            "adapter/adapter.safetensors: not a valid safetensors file (corrupt or truncated?)",
        ]),
    };
    check(&[truncated], &cache);
}
