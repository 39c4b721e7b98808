//! Bad input through the `pets` binary, part 1: malformed design and space RON, budgets that
//! cannot be parsed or that no design fits, unknown samplers and baselines. Each exits with
//! status 1 and a message naming the file and line/column or the module and field; none panics.

mod bad_input;
mod binary;

use bad_input::{check, model_variant, reviews, s, Case};
use binary::scratch;

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
        args.extend(s(&[
            "--reports",
            dir.join("reports").to_str().unwrap(),
            "--quiet",
        ]));
        args.extend(s(extra));
        args
    };
    let train_with = |extra: &[&str]| {
        let mut args = s(&[
            "train",
            "--design",
            "search_spaces/presets/lora.ron",
            "--model",
            &m,
        ]);
        args.extend(s(&[
            "--task",
            data.to_str().unwrap(),
            "--max-steps",
            "1",
            "--quiet",
        ]));
        args.extend(s(extra));
        args
    };
    let design =
        |modules: &str| format!("Design(\n  name: \"x\",\n  modules: [\n    {modules}\n  ],\n)");
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
            name: "unknown field inside a form",
            args: validate(file("form.ron", design("Module(form: Prefix(l: 8, reparm: Some(512)), site: AttentionHeads)").as_bytes())),
            needles: s(&["form.ron:4:", "reparm"]),
        },
        Case {
            name: "unknown field inside a space's option",
            args: search(&["--space", &file("space-typo.ron", b"SearchSpace(\n  name: \"s\",\n  slots: [Slot(name: \"a\", options: [ModuleOption(\n    form: Lora(alpha: Ratio([2.0])),\n    sites: [[Projection(Query)]],\n    widht: List([4]),\n  )])],\n)")]),
            needles: s(&["space-typo.ron:6:", "widht"]),
        },
        Case {
            name: "learning rate zero",
            args: validate(file("lr0.ron", b"Design(\n  name: \"x\",\n  learning_rate: Some(0.0),\n)")),
            needles: s(&["lr0.ron:3:", "learning_rate 0: expected a positive, finite learning rate"]),
        },
        Case {
            name: "learning rate negative",
            args: validate(file("lr-neg.ron", b"Design(\n  name: \"x\",\n  learning_rate: Some(-0.001),\n)")),
            needles: s(&["lr-neg.ron:3:", "learning_rate -0.001: expected a positive"]),
        },
        Case {
            name: "learning rate underflowing to zero",
            args: validate(file("lr-tiny.ron", b"Design(\n  name: \"x\",\n  learning_rate: Some(99999999e-99999999),\n)")),
            needles: s(&["lr-tiny.ron:3:", "learning_rate"]),
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
            needles: s(&["module m0: field `layers`: layer 2 is out of range (the encoder has 2 layers, 0..=1)"]),
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
        Case {
            name: "--lr zero",
            args: train_with(&["--lr", "0"]),
            needles: s(&["--lr 0: expected a positive, finite learning rate"]),
        },
        Case {
            name: "--lr not a number",
            args: train_with(&["--lr", "NaN"]),
            needles: s(&["--lr NaN: expected a positive, finite learning rate"]),
        },
        Case {
            name: "--eta 2 --rungs 65 (once a division by zero)",
            args: search(&["--eta", "2", "--rungs", "65"]),
            needles: s(&["--rungs 65: expected 1 to 8"]),
        },
        Case {
            name: "--eta 1",
            args: search(&["--eta", "1"]),
            needles: s(&["--eta 1: expected 2 to 10"]),
        },
        Case {
            name: "--initial 0",
            args: search(&["--initial", "0"]),
            needles: s(&["--initial 0: expected 1 to 100000"]),
        },
        Case {
            name: "--population 0",
            args: search(&["--population", "0"]),
            needles: s(&["--population 0: expected 1 to 10000"]),
        },
        Case {
            name: "--jobs 0",
            args: search(&["--jobs", "0"]),
            needles: s(&["--jobs 0: expected 1 to 256"]),
        },
        Case {
            name: "--max-steps 0 on a search",
            args: search(&["--max-steps", "0"]),
            needles: s(&["--max-steps 0: expected at least 1"]),
        },
        Case {
            name: "more rungs than full fidelity has steps",
            // 40 reviews leave 32 to train (4 dev, 4 test) in batches of 32: 1 step, 1 epoch.
            args: search(&["--rungs", "3"]),
            needles: s(&["--rungs 3: with --eta 2 the cheapest rung would train 1/4 of the 1 full-fidelity steps"]),
        },
    ];
    check(&cases, &dir.join("cache"));
    // None of the refused searches left a study behind that a corrected command would clash with.
    let leftover = pets::search::store::Store::open(&dir.join("s.sqlite"))
        .and_then(|s| s.study_names())
        .unwrap_or_default();
    assert!(leftover.is_empty(), "{leftover:?}");
}
