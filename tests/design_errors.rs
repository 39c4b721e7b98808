//! Malformed and invalid designs give typed errors naming the file, line, module and field; none panics.

use pets::backbone::tiny::tiny_config;
use pets::graph::{DesignGraph, GraphError};
use pets::params::design_cost;
use pets::spec::Design;

fn design(modules: &str) -> String {
    format!("Design(name: \"t\", modules: [{modules}])")
}

/// (case, RON modules, the error's text must contain)
const INVALID: &[(&str, &str, &str)] = &[
    (
        "prefix on the FFN",
        "Module(form: Prefix(l: 4), site: Ffn)",
        "module m0: field `site`: a prefix modifies per-head attention",
    ),
    (
        "sequential prefix",
        "Module(form: Prefix(l: 4), site: AttentionHeads, insertion: Sequential)",
        "module m0: field `insertion`: a prefix is parallel",
    ),
    (
        "prefix with a fixed scale",
        "Module(form: Prefix(l: 4), site: AttentionHeads, composition: Some(Scaled(4.0)))",
        "module m0: field `composition`",
    ),
    (
        "width 0",
        "Module(name: Some(\"ffn\"), form: Bottleneck(r: 0, activation: Relu), site: Ffn)",
        "module ffn: field `form.r`: width must be at least 1",
    ),
    (
        "prefix length 0",
        "Module(form: Prefix(l: 0), site: AttentionHeads)",
        "module m0: field `form.l`: width must be at least 1",
    ),
    (
        "wider than hidden",
        "Module(form: Lora(r: 49, alpha: 8.0), site: Projection(Query))",
        "module m0: field `form.r`: width 49 is wider than the hidden size 48",
    ),
    (
        "layer out of range",
        "Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Value), layers: List([0, 2]))",
        "module m0: field `layers`: layer 2 is out of range (the encoder has 2 layers",
    ),
    (
        "empty layer set",
        "Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Value), layers: List([]))",
        "module m0: field `layers`: selects no layer",
    ),
    (
        "two LoRAs on one matrix",
        "Module(name: Some(\"a\"), form: Lora(r: 4, alpha: 8.0), site: Projection(Query)), \
         Module(name: Some(\"b\"), form: Lora(r: 8, alpha: 8.0), site: Projection(Query), layers: Range(1, 1))",
        "modules a and b conflict at layer 1, Projection(Query): two LoRA updates of one matrix",
    ),
    (
        "two sequential adapters on one output",
        "Module(form: Bottleneck(r: 4, activation: Relu), site: Ffn, insertion: Sequential), \
         Module(form: Bottleneck(r: 8, activation: Gelu), site: Ffn, insertion: Sequential)",
        "modules m0 and m1 conflict at layer 0, Ffn",
    ),
    (
        "two prefixes",
        "Module(form: Prefix(l: 4), site: AttentionHeads), Module(form: Prefix(l: 2), site: AttentionHeads)",
        "two prefixes in one layer",
    ),
    (
        "sequential LoRA",
        "Module(form: Lora(r: 4, alpha: 8.0), site: Projection(Key), insertion: Sequential)",
        "module m0: field `insertion`: LoRA reads the projection's input",
    ),
    (
        "LoRA per head",
        "Module(form: Lora(r: 4, alpha: 8.0), site: AttentionHeads)",
        "module m0: field `site`: LoRA is a low-rank update",
    ),
    (
        "heads do not divide the width",
        "Module(form: Bottleneck(r: 6, activation: Relu), site: AttentionHeads)",
        "r must be a multiple of 4",
    ),
    (
        "non-finite scale",
        "Module(form: Bottleneck(r: 4, activation: Relu), site: Ffn, composition: Some(Scaled(inf)))",
        "module m0: field `composition`: inf must be finite and non-zero",
    ),
    (
        "duplicate names",
        "Module(name: Some(\"x\"), form: Prefix(l: 4), site: AttentionHeads), \
         Module(name: Some(\"x\"), form: Bottleneck(r: 4, activation: Relu), site: Ffn)",
        "two modules are named \"x\"",
    ),
];

#[test]
fn invalid_designs_name_module_and_field() {
    let shape = tiny_config().shape();
    for (case, modules, expected) in INVALID {
        let text = design(modules);
        let parsed = Design::from_ron(&text, "case.ron").unwrap_or_else(|e| panic!("{case}: {e}"));
        let err = design_cost(&parsed, &shape, 2).expect_err(case).to_string();
        assert!(err.contains(expected), "{case}: got {err:?}");
        // The graph builder runs the same validation.
        let graph_err: GraphError = DesignGraph::build(&parsed, &shape).err().expect(case);
        assert_eq!(graph_err.to_string(), err, "{case}");
    }
}

/// (case, RON text, expected `file:line:column` prefix, text the message must contain)
const MALFORMED: &[(&str, &str, &str, &str)] = &[
    ("unknown field", "Design(\n  name: \"x\",\n  modulez: [],\n)", "m.ron:3:", "modulez"),
    ("unknown module field", "Design(name: \"x\", modules: [\n Module(form: Prefix(l: 4), site: AttentionHeads, colour: 3)])", "m.ron:2:", "colour"),
    ("wrong type", "Design(name: \"x\", modules: [Module(form: Lora(r: \"8\", alpha: 8.0), site: Ffn)])", "m.ron:1:", ""),
    ("unknown site", "Design(name: \"x\", modules: [Module(form: Prefix(l: 4), site: Everywhere)])", "m.ron:1:", "Everywhere"),
    ("negative width", "Design(name: \"x\", modules: [Module(form: Prefix(l: -4), site: AttentionHeads)])", "m.ron:1:", ""),
    ("syntax", "Design(name: \"x\", modules: [", "m.ron:1:", ""),
    ("empty file", "", "m.ron:1:", ""),
    ("missing name", "Design(modules: [])", "m.ron:1:", "name"),
];

#[test]
fn malformed_ron_reports_file_line_and_column() {
    for (case, text, prefix, needle) in MALFORMED {
        let err = Design::from_ron(text, "m.ron").expect_err(case).to_string();
        assert!(err.starts_with(prefix), "{case}: {err}");
        assert!(err.contains(needle), "{case}: {err}");
    }
}

#[test]
fn every_preset_graph_has_one_node_per_module_instance() {
    let shape = tiny_config().shape();
    let designs =
        pets::report::load_presets(std::path::Path::new("search_spaces/presets"), &[]).unwrap();
    for d in designs {
        let graph = DesignGraph::build(&d, &shape).unwrap();
        let instances: usize = graph.layer_sets.iter().map(Vec::len).sum();
        assert_eq!(graph.module_instances(), instances, "{}", d.name);
        let dot = graph.to_dot(&d);
        assert!(dot.starts_with("digraph design {") && dot.trim_end().ends_with('}'));
        assert_eq!(dot.matches("subgraph cluster_").count(), shape.layers);
    }
}
