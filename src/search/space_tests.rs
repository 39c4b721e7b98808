//! Unit tests of the search-space format: the shipped spaces parse, and each rule names its place.

use super::*;

fn shipped() -> Vec<(String, SearchSpace)> {
    let mut out = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("search_spaces");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    paths.sort();
    for path in paths {
        let space = SearchSpace::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        out.push((stem, space));
    }
    out
}

#[test]
fn every_shipped_space_parses_and_validates() {
    let spaces = shipped();
    let names: Vec<&str> = spaces.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["mam", "unified"]);
    for (stem, space) in &spaces {
        assert_eq!(&space.name, stem, "a space is named after its file");
        assert!(space.slots.iter().all(|s| s.optional));
    }
    let unified = &spaces[1].1;
    let forms: Vec<&str> = unified
        .slots
        .iter()
        .flat_map(|s| s.options.iter().map(|o| o.form.kind()))
        .collect();
    for kind in ["prefix", "bottleneck", "lora"] {
        assert!(forms.contains(&kind), "unified lacks {kind}");
    }
}

const GOOD: &str = r#"SearchSpace(name: "t", slots: [Slot(name: "a", options: [
    ModuleOption(form: Lora(alpha: Ratio([2.0])), sites: [[Projection(Query)]],
                 width: LogRange(1, 8)),
])])"#;

#[test]
fn defaults_fill_the_unsaid_dimensions() {
    let space = SearchSpace::from_ron(GOOD, "t.ron").unwrap();
    let o = &space.slots[0].options[0];
    assert!(!space.slots[0].optional);
    assert_eq!(space.unfreeze, vec![Vec::<BackbonePart>::new()]);
    assert_eq!(o.insertion, vec![Insertion::Parallel]);
    assert_eq!(o.compositions(), vec![None]);
    assert_eq!(o.layers, vec![LayerChoice::All]);
    assert_eq!(o.init, vec![Init::Default]);
    assert_eq!(
        o.form.form(0, 8),
        crate::spec::Form::Lora(crate::spec::LoraConfig { r: 8, alpha: 16.0 })
    );
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let text = GOOD.replace("width: LogRange", "\n    widht: LogRange");
    let err = SearchSpace::from_ron(&text, "s.ron")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("s.ron:4:5:"), "{err}");
    assert!(err.contains("widht"), "{err}");
}

#[test]
fn semantic_errors_name_slot_option_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "sites: [[Projection(Query)]]",
            "sites: [[AttentionHeads]]",
            "slot a, option 0 (lora): field `sites`",
        ),
        (
            "sites: [[Projection(Query)]]",
            "sites: [[]]",
            "field `sites`: choice 0 is an empty site set",
        ),
        (
            "sites: [[Projection(Query)]]",
            "sites: [[Ffn]], insertion: [Sequential]",
            "field `insertion`: a lora is parallel only",
        ),
        (
            "LogRange(1, 8)",
            "LogRange(0, 8)",
            "field `width`: LogRange(0, 8)",
        ),
        ("LogRange(1, 8)", "LogRange(9, 8)", "field `width`"),
        (
            "LogRange(1, 8)",
            "List([])",
            "field `width`: lists no choice",
        ),
        ("Ratio([2.0])", "Ratio([0.0])", "field `form.alpha`"),
        ("Ratio([2.0])", "Ratio([])", "field `form`: lists no choice"),
        (
            "Lora(alpha: Ratio([2.0])), sites: [[Projection(Query)]]",
            "Prefix(), sites: [[Attention]]",
            "field `sites`: a prefix modifies AttentionHeads only",
        ),
        (
            "Lora(alpha: Ratio([2.0])), sites: [[Projection(Query)]]",
            "Prefix(), sites: [[AttentionHeads]], composition: [Scaled([4.0])]",
            "option 0 (prefix): field `composition`",
        ),
        (
            "Lora(alpha: Ratio([2.0])), sites: [[Projection(Query)]]",
            "Prefix(reparam: [Some(0)]), sites: [[AttentionHeads]]",
            "field `form.reparam`",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), layers: [Top(0)]",
            "field `layers`: Top(0)",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), layers: [Range(3, 1)]",
            "field `layers`",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), init: [Normal(0.0)]",
            "field `init`",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), composition: []",
            "field `composition`",
        ),
        ("name: \"a\"", "name: \"a.b\"", "slot 0: field `name`"),
        ("name: \"t\"", "name: \"\"", "field `name`"),
        ("])])", "])], unfreeze: [])", "field `unfreeze`"),
        (
            "])])",
            "])], learning_rate: [-1.0])",
            "field `learning_rate`",
        ),
        (
            "])])",
            "]), Slot(name: \"a\", options: [])])",
            "slot a: two slots have this name",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), learning_rate: LogRange(0.0, 1e-3)",
            "slot a, option 0 (lora): field `learning_rate`: LogRange(0e0, 1e-3) needs positive",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), learning_rate: LogRange(1e-3, 1e-4)",
            "field `learning_rate`: LogRange(1e-3, 1e-4) needs positive, finite min ≤ max",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), learning_rate: LogRange(1e-4, inf)",
            "field `learning_rate`",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), learning_rate: List([])",
            "field `learning_rate`: lists no choice",
        ),
        (
            "width: LogRange(1, 8)",
            "width: LogRange(1, 8), learning_rate: List([1e-3, -1e-3])",
            "field `learning_rate`: -0.001 must be positive and finite",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        let err = match SearchSpace::from_ron(&text, "t.ron") {
            Ok(_) => panic!("{to} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with("search space"), "{err}");
        assert!(err.contains(expected), "{to}: {err}");
    }
}

#[test]
fn layer_choices_resolve_relative_to_the_layer_count() {
    let cases: &[(LayerChoice, usize, Option<Layers>)] = &[
        (LayerChoice::All, 6, Some(Layers::All)),
        (LayerChoice::TopHalf, 6, Some(Layers::Range(3, 5))),
        (LayerChoice::BottomHalf, 6, Some(Layers::Range(0, 2))),
        (LayerChoice::TopHalf, 3, Some(Layers::Range(1, 2))),
        (LayerChoice::TopHalf, 2, Some(Layers::Range(1, 1))),
        (LayerChoice::BottomHalf, 1, Some(Layers::Range(0, 0))),
        (LayerChoice::Top(2), 6, Some(Layers::Range(4, 5))),
        (LayerChoice::Top(9), 2, Some(Layers::Range(0, 1))),
        (LayerChoice::Bottom(1), 6, Some(Layers::Range(0, 0))),
        (LayerChoice::Range(2, 5), 6, Some(Layers::Range(2, 5))),
        (LayerChoice::Range(2, 5), 2, None),
        (LayerChoice::List(vec![0, 4]), 2, None),
        (LayerChoice::AllExcept(vec![0]), 1, None),
        (LayerChoice::AllExcept(vec![5]), 2, None),
    ];
    for (choice, n, expected) in cases {
        assert_eq!(&choice.resolve(*n), expected, "{choice:?} on {n}");
    }
}

#[test]
fn composition_lists_expand_into_choices() {
    let text = GOOD.replace(
        "width:",
        "composition: [Default, Add, Scaled([2.0, 4.0]), LearnedScale([1.0]), Gated], width:",
    );
    let space = SearchSpace::from_ron(&text, "t.ron").unwrap();
    let c = space.slots[0].options[0].compositions();
    use Composition::*;
    let expected = [
        None,
        Some(Add),
        Some(Scaled(2.0)),
        Some(Scaled(4.0)),
        Some(LearnedScale(1.0)),
        Some(Gated),
    ];
    assert_eq!(c, expected);
}

#[test]
fn a_module_learning_rate_parses_and_defaults_to_inherit() {
    let space = SearchSpace::from_ron(GOOD, "t.ron").unwrap();
    assert_eq!(space.slots[0].options[0].learning_rate, LrChoice::Inherit);
    for (written, parsed) in [
        ("LogRange(1e-4, 3e-3)", LrChoice::LogRange(1e-4, 3e-3)),
        ("List([3e-4, 1e-3])", LrChoice::List(vec![3e-4, 1e-3])),
    ] {
        let text = GOOD.replace("width:", &format!("learning_rate: {written}, width:"));
        let space = SearchSpace::from_ron(&text, "t.ron").unwrap();
        assert_eq!(space.slots[0].options[0].learning_rate, parsed);
    }
    // The top-level list of the older format still parses beside it.
    let text = GOOD.replace("])])", "])], learning_rate: [5e-4])");
    let space = SearchSpace::from_ron(&text, "t.ron").unwrap();
    assert_eq!(space.learning_rate, vec![5e-4]);
}
