//! Tests of the design RON types: parsing, unknown fields and values refused with
//! `file:line:column`, layer sets.

use super::*;

const MAM: &str = r#"Design(
    name: "mam",
    modules: [
        Module(form: Prefix(l: 8), site: AttentionHeads),
        Module(
            form: Bottleneck(r: 16, activation: Relu),
            site: Ffn,
            insertion: Parallel,
            composition: Some(Scaled(4.0)),
        ),
    ],
)"#;

#[test]
fn parses_a_union_of_modules() {
    let design = Design::from_ron(MAM, "mam.ron").unwrap();
    assert_eq!(design.modules.len(), 2);
    assert_eq!(
        design.modules[0].effective_composition(),
        Composition::Gated
    );
    assert_eq!(
        design.modules[1].effective_composition(),
        Composition::Scaled(4.0)
    );
    assert_eq!(design.modules[1].form.width(), 16);
    let again = Design::from_ron(&design.to_ron(), "round trip").unwrap();
    assert_eq!(again, design);
}

#[test]
fn unknown_field_names_file_line_and_column() {
    let text = "Design(\n  name: \"x\",\n  modulez: [],\n)";
    let err = Design::from_ron(text, "bad.ron").unwrap_err().to_string();
    assert!(err.starts_with("bad.ron:3:"), "{err}");
    assert!(err.contains("modulez"), "{err}");
}

#[test]
fn unknown_fields_inside_modules_and_forms_name_file_line_and_column() {
    let cases = [
        (
            "Module(form: Prefix(l: 8, reparm: Some(512)), site: AttentionHeads)",
            "reparm",
        ),
        (
            "Module(form: Lora(r: 4, alpha: 8.0, dropout_p: 0.1), site: Ffn)",
            "dropout_p",
        ),
        (
            "Module(form: Bottleneck(r: 4, activation: Relu, biass: true), site: Ffn)",
            "biass",
        ),
        (
            "Module(form: Lora(r: 4, alpha: 8.0), site: Ffn, layerz: All)",
            "layerz",
        ),
    ];
    for (module, field) in cases {
        let text = format!("Design(\n  name: \"x\",\n  modules: [{module}],\n)");
        let err = Design::from_ron(&text, "typo.ron").unwrap_err().to_string();
        assert!(err.starts_with("typo.ron:3:"), "{err}");
        assert!(err.contains(field), "{err}");
    }
}

#[test]
fn unusable_learning_rates_are_refused_where_written() {
    for lr in [
        "Some(0.0)",
        "Some(-0.001)",
        "Some(99999999e-99999999)",
        "Some(1e999)",
    ] {
        let text = format!("Design(\n  name: \"x\",\n  learning_rate: {lr},\n)");
        let err = Design::from_ron(&text, "lr.ron").unwrap_err().to_string();
        assert!(err.starts_with("lr.ron:3:"), "{lr}: {err}");
        assert!(err.contains("learning_rate"), "{lr}: {err}");
    }
    let ok = Design::from_ron("Design(name: \"x\", learning_rate: Some(3e-4))", "t").unwrap();
    assert_eq!(ok.learning_rate, Some(3e-4));
}

#[test]
fn wrong_type_is_a_parse_error() {
    let text =
        "Design(name: \"x\", modules: [Module(form: Lora(r: \"eight\", alpha: 16.0), site: Ffn)])";
    let err = Design::from_ron(text, "t.ron").unwrap_err().to_string();
    assert!(err.starts_with("t.ron:1:"), "{err}");
}

#[test]
fn layer_sets_resolve() {
    let cases: &[(Layers, Result<Vec<usize>, usize>)] = &[
        (Layers::All, Ok(vec![0, 1, 2, 3])),
        (Layers::Range(1, 2), Ok(vec![1, 2])),
        (Layers::List(vec![3, 0, 3]), Ok(vec![0, 3])),
        (Layers::AllExcept(vec![0]), Ok(vec![1, 2, 3])),
        (Layers::List(vec![4]), Err(4)),
        (Layers::Range(2, 7), Err(4)),
        (Layers::AllExcept(vec![9]), Err(9)),
    ];
    for (layers, expected) in cases {
        assert_eq!(&layers.resolve(4), expected, "{layers:?}");
    }
}

#[test]
fn the_type_a_ron_text_starts_with() {
    let cases = [
        ("Design(name: \"x\")", Some("Design")),
        (
            "// a space\n/* of designs */\n#![enable(implicit_some)]\n SearchSpace(",
            Some("SearchSpace"),
        ),
        ("(name: \"x\")", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(ron_type_name(text), expected, "{text:?}");
    }
}
