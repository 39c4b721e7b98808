//! The graph is the wiring: a forward pass of the compiled model, recorded by the encoder and
//! the modules themselves (`backbone::trace`), reads and writes exactly the graph's edges.

use super::DesignGraph;
use crate::backbone::tiny::tiny_encoder;
use crate::backbone::trace;
use crate::batch::{make_batch, TokenizedSplit};
use crate::model::AdaptedModel;
use crate::sites::Point;
use crate::spec::{parse_ron, Design};
use crate::train::Classifier;
use candle_core::Device;

/// (instance name, layer, point read, point written), sorted.
type Wiring = Vec<(String, usize, Point, Point)>;

fn recorded(design: &Design) -> Wiring {
    let model = AdaptedModel::build(tiny_encoder(0).expect("tiny"), design, 2, 0).expect("builds");
    model.randomise(0.1).expect("randomise");
    let split = TokenizedSplit {
        ids: vec![vec![1, 5, 9, 2], vec![1, 7, 2]],
        labels: vec![0, 1],
    };
    let batch = make_batch(&split, &[0, 1], 0, &Device::Cpu).expect("batch");
    let (logits, trace) = trace::record(|| model.logits(&batch, true));
    logits.expect("forward");
    let mut out: Wiring = trace
        .applied
        .iter()
        .map(|a| {
            let (layer, reads) = trace.point_of(a.read).expect("read a known tensor");
            let written = a.before.and_then(|b| trace.point_of(b));
            let (_, writes) = written
                .or_else(|| trace.point_of(a.after))
                .expect("wrote a known point");
            (a.label.clone(), layer, reads, writes)
        })
        .collect();
    out.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    out
}

fn drawn(design: &Design) -> Wiring {
    let shape = crate::backbone::tiny::tiny_config().shape();
    let graph = DesignGraph::build(design, &shape).expect("valid");
    let mut out: Wiring = graph
        .instances()
        .map(|i| (i.name.clone(), i.layer, i.reads, i.writes))
        .collect();
    out.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    out
}

/// Every site and insertion at least once, beyond what the presets use.
const EVERY_SITE: &str = r#"Design(name: "every-site", modules: [
    Module(name: Some("q"), form: Lora(r: 2, alpha: 4.0), site: Projection(Query)),
    Module(name: Some("k"), form: Bottleneck(r: 3, activation: Relu), site: Projection(Key), insertion: Sequential),
    Module(name: Some("kp"), form: Bottleneck(r: 3, activation: Gelu), site: Projection(Key)),
    Module(name: Some("v"), form: Ia3, site: Projection(Value), insertion: Sequential),
    Module(name: Some("hp"), form: Bottleneck(r: 4, activation: Relu), site: AttentionHeads),
    Module(name: Some("hs"), form: Bottleneck(r: 8, activation: Tanh), site: AttentionHeads, insertion: Sequential, layers: List([1])),
    Module(name: Some("o"), form: Lora(r: 2, alpha: 2.0), site: Projection(Output), composition: Some(Gated)),
    Module(name: Some("os"), form: Ia3, site: Projection(Output), insertion: Sequential),
    Module(name: Some("attn"), form: Bottleneck(r: 5, activation: Silu), site: Attention, composition: Some(Scaled(2.0))),
    Module(name: Some("fi"), form: Lora(r: 2, alpha: 4.0), site: Projection(FfnIn)),
    Module(name: Some("fis"), form: Bottleneck(r: 2, activation: Relu), site: Projection(FfnIn), insertion: Sequential),
    Module(name: Some("act"), form: Ia3, site: FfnActivation, insertion: Sequential, layers: List([0])),
    Module(name: Some("acts"), form: Bottleneck(r: 2, activation: Relu), site: FfnActivation, insertion: Sequential, layers: List([1])),
    Module(name: Some("fo"), form: Lora(r: 2, alpha: 4.0), site: Projection(FfnOut)),
    Module(name: Some("ffn"), form: Bottleneck(r: 6, activation: Relu), site: Ffn, composition: Some(LearnedScale(1.0))),
    Module(name: Some("ffns"), form: Bottleneck(r: 6, activation: Identity), site: Ffn, insertion: Sequential),
    Module(name: Some("prefix"), form: Prefix(l: 3), site: AttentionHeads, layers: List([0])),
])"#;

#[test]
fn the_compiled_model_reads_and_writes_exactly_the_graphs_edges() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("search_spaces/presets");
    let mut designs = crate::report::load_presets(&dir, &[]).expect("presets");
    designs.push(parse_ron(EVERY_SITE, "every-site").expect("parses"));
    assert!(designs.len() >= 11, "{} designs", designs.len());
    for design in &designs {
        let recorded = recorded(design);
        assert_eq!(recorded, drawn(design), "{}", design.name);
        let instances: usize = recorded.len();
        if !design.modules.is_empty() {
            assert!(instances > 0, "{}: nothing recorded", design.name);
        }
    }
}

#[test]
fn a_module_wired_elsewhere_than_drawn_is_caught() {
    // The recorder sees what runs: a graph drawn for another site differs from the recording.
    let on_ffn: Design = parse_ron(
        r#"Design(name: "a", modules: [Module(name: Some("m"), form: Bottleneck(r: 4, activation: Relu), site: Ffn)])"#,
        "a",
    )
    .expect("parses");
    let mut on_attention = on_ffn.clone();
    on_attention.modules[0].site = crate::sites::Site::Attention;
    assert_ne!(recorded(&on_ffn), drawn(&on_attention));
    assert_eq!(recorded(&on_attention), drawn(&on_attention));
}
