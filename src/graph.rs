//! The petgraph IR of a design on a backbone (frozen sublayers and modules as nodes, data flow as
//! edges) and the validation that runs before any tensor exists.

use crate::backbone::config::BackboneShape;
use crate::spec::{Composition, Design, Form, Insertion, Projection, Site};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;
use std::fmt::Write;
use thiserror::Error;

/// A design the backbone cannot host. Each variant names the module and the field at fault.
#[derive(Debug, Error, PartialEq)]
pub enum GraphError {
    #[error("module {module}: field `site`: a prefix modifies per-head attention (AttentionHeads), not {site}")]
    PrefixOutsideAttention { module: String, site: String },
    #[error("module {module}: field `insertion`: a prefix is parallel by nature (it attends from the sublayer input); Sequential is not defined")]
    SequentialPrefix { module: String },
    #[error("module {module}: field `composition`: a prefix is gated by the attention softmax; {composition} is not defined")]
    PrefixComposition { module: String, composition: String },
    #[error("module {module}: field `insertion`: LoRA reads the projection's input (Parallel); Sequential is not defined")]
    SequentialLora { module: String },
    #[error("module {module}: field `site`: LoRA is a low-rank update of one matrix; AttentionHeads has none")]
    LoraOnHeads { module: String },
    #[error("module {module}: field `form.{field}`: width must be at least 1")]
    ZeroWidth { module: String, field: &'static str },
    #[error("module {module}: field `form.{field}`: width {width} is wider than the hidden size {hidden}")]
    TooWide {
        module: String,
        field: &'static str,
        width: usize,
        hidden: usize,
    },
    /// The prefix MLP's width is bounded too: an unbounded one would overflow the accounting
    /// and ask for any amount of memory.
    #[error(
        "module {module}: field `form.reparam`: width {width} is wider than the FFN size {ffn}"
    )]
    ReparamTooWide {
        module: String,
        width: usize,
        ffn: usize,
    },
    #[error("module {module}: field `form.r`: a per-head bottleneck splits r={r} across {heads} heads; r must be a multiple of {heads}")]
    HeadsDoNotDivide {
        module: String,
        r: usize,
        heads: usize,
    },
    #[error("module {module}: field `layers`: layer {layer} is out of range (the encoder has {count} layers, 0..={last})", last = count.saturating_sub(1))]
    LayerOutOfRange {
        module: String,
        layer: usize,
        count: usize,
    },
    #[error("module {module}: field `layers`: selects no layer")]
    NoLayers { module: String },
    #[error("module {module}: field `{field}`: {value} must be finite and non-zero")]
    BadNumber {
        module: String,
        field: &'static str,
        value: f32,
    },
    #[error("modules {first} and {second} conflict at layer {layer}, {site}: {why}")]
    Conflict {
        first: String,
        second: String,
        layer: usize,
        site: String,
        why: &'static str,
    },
    #[error("two modules are named {name:?}; names must be unique")]
    DuplicateName { name: String },
}

/// Validates a design against a backbone shape; returns each module's resolved layer list.
pub fn validate(design: &Design, shape: &BackboneShape) -> Result<Vec<Vec<usize>>, GraphError> {
    let mut seen_names = HashMap::new();
    let mut layer_sets = Vec::with_capacity(design.modules.len());
    for (i, m) in design.modules.iter().enumerate() {
        let module = design.module_label(i);
        if seen_names.insert(module.clone(), i).is_some() {
            return Err(GraphError::DuplicateName { name: module });
        }
        let (field, width) = match m.form {
            Form::Prefix { l, .. } => ("l", l),
            _ => ("r", m.form.width()),
        };
        if width == 0 {
            return Err(GraphError::ZeroWidth { module, field });
        }
        if width > shape.hidden {
            return Err(GraphError::TooWide {
                module,
                field,
                width,
                hidden: shape.hidden,
            });
        }
        match &m.form {
            Form::Prefix { reparam, .. } => {
                if m.site != Site::AttentionHeads {
                    let site = format!("{:?}", m.site);
                    return Err(GraphError::PrefixOutsideAttention { module, site });
                }
                if m.insertion == Insertion::Sequential {
                    return Err(GraphError::SequentialPrefix { module });
                }
                if let Some(c) = m.composition.filter(|c| *c != Composition::Gated) {
                    let composition = format!("{c:?}");
                    return Err(GraphError::PrefixComposition {
                        module,
                        composition,
                    });
                }
                if *reparam == Some(0) {
                    let field = "reparam";
                    return Err(GraphError::ZeroWidth { module, field });
                }
                if let Some(width) = reparam.filter(|m| *m > shape.ffn) {
                    let ffn = shape.ffn;
                    return Err(GraphError::ReparamTooWide { module, width, ffn });
                }
            }
            Form::Lora { alpha, .. } => {
                if m.site == Site::AttentionHeads {
                    return Err(GraphError::LoraOnHeads { module });
                }
                if m.insertion == Insertion::Sequential {
                    return Err(GraphError::SequentialLora { module });
                }
                check_number(&module, "form.alpha", *alpha)?;
            }
            Form::Bottleneck { r, .. } => {
                if m.site == Site::AttentionHeads && !r.is_multiple_of(shape.heads) {
                    let (r, heads) = (*r, shape.heads);
                    return Err(GraphError::HeadsDoNotDivide { module, r, heads });
                }
            }
        }
        match m.effective_composition() {
            Composition::Scaled(s) | Composition::LearnedScale(s) => {
                check_number(&module, "composition", s)?
            }
            Composition::Add | Composition::Gated => {}
        }
        if let crate::spec::Init::Normal(std) = m.init {
            check_number(&module, "init", std)?;
        }
        let layers =
            m.layers
                .resolve(shape.layers)
                .map_err(|layer| GraphError::LayerOutOfRange {
                    module: module.clone(),
                    layer,
                    count: shape.layers,
                })?;
        if layers.is_empty() {
            return Err(GraphError::NoLayers { module });
        }
        layer_sets.push(layers);
    }
    check_conflicts(design, &layer_sets)?;
    Ok(layer_sets)
}

fn check_number(module: &str, field: &'static str, value: f32) -> Result<(), GraphError> {
    if value.is_finite() && value != 0.0 {
        Ok(())
    } else {
        Err(GraphError::BadNumber {
            module: module.to_string(),
            field,
            value,
        })
    }
}

/// Two modules fight over one site when their order or identity would be ambiguous: two prefixes
/// in a layer, two LoRAs on one matrix, or two sequential modules on one output. Parallel
/// modules at a site simply add.
fn check_conflicts(design: &Design, layer_sets: &[Vec<usize>]) -> Result<(), GraphError> {
    let mut claims: HashMap<(usize, String), usize> = HashMap::new();
    for (i, m) in design.modules.iter().enumerate() {
        let claim = match (&m.form, m.insertion) {
            (Form::Prefix { .. }, _) => Some(("prefix", "two prefixes in one layer")),
            (Form::Lora { .. }, _) => Some(("lora", "two LoRA updates of one matrix")),
            (_, Insertion::Sequential) => Some((
                "sequential",
                "two sequential modules on one output have no defined order",
            )),
            _ => None,
        };
        let Some((kind, why)) = claim else { continue };
        for &layer in &layer_sets[i] {
            let key = (layer, format!("{kind}@{:?}", m.site));
            if let Some(&other) = claims.get(&key) {
                return Err(GraphError::Conflict {
                    first: design.module_label(other),
                    second: design.module_label(i),
                    layer,
                    site: format!("{:?}", m.site),
                    why,
                });
            }
            claims.insert(key, i);
        }
    }
    Ok(())
}

/// A node of the IR: a frozen sublayer of one layer, or a module instance on one layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Embeddings,
    Frozen {
        layer: usize,
        part: Part,
    },
    Module {
        index: usize,
        label: String,
        layer: usize,
        text: String,
    },
    Head,
}

/// The frozen sublayers of a post-LN BERT layer that modules read from and write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Query,
    Key,
    Value,
    Heads,
    Output,
    AttentionNorm,
    FfnIn,
    FfnOut,
    FfnNorm,
}

/// The validated design as a graph on the backbone.
pub struct DesignGraph {
    pub graph: DiGraph<Node, String>,
    pub layer_sets: Vec<Vec<usize>>,
}

impl DesignGraph {
    pub fn build(design: &Design, shape: &BackboneShape) -> Result<DesignGraph, GraphError> {
        let layer_sets = validate(design, shape)?;
        let mut graph = DiGraph::new();
        let mut input = graph.add_node(Node::Embeddings);
        let mut frozen: HashMap<(usize, Part), NodeIndex> = HashMap::new();
        let flow = |from: NodeIndex, to: NodeIndex, g: &mut DiGraph<Node, String>| {
            g.add_edge(from, to, String::new());
        };
        let mut layer_inputs = Vec::with_capacity(shape.layers);
        for layer in 0..shape.layers {
            let mut node = |part| {
                let n = graph.add_node(Node::Frozen { layer, part });
                frozen.insert((layer, part), n);
                n
            };
            let [q, k, v, heads, out, attn_norm, ffn_in, ffn_out, ffn_norm] = [
                Part::Query,
                Part::Key,
                Part::Value,
                Part::Heads,
                Part::Output,
                Part::AttentionNorm,
                Part::FfnIn,
                Part::FfnOut,
                Part::FfnNorm,
            ]
            .map(&mut node);
            for (from, to) in [
                (input, q),
                (input, k),
                (input, v),
                (q, heads),
                (k, heads),
                (v, heads),
                (heads, out),
                (out, attn_norm),
                (input, attn_norm),
                (attn_norm, ffn_in),
                (ffn_in, ffn_out),
                (ffn_out, ffn_norm),
                (attn_norm, ffn_norm),
            ] {
                flow(from, to, &mut graph);
            }
            layer_inputs.push(input);
            input = ffn_norm;
        }
        let head = graph.add_node(Node::Head);
        flow(input, head, &mut graph);

        for (index, (m, layers)) in design.modules.iter().zip(&layer_sets).enumerate() {
            for &layer in layers {
                let (reads, writes) = endpoints(m.site, m.insertion);
                let read = match reads {
                    Some(part) => frozen[&(layer, part)],
                    None => layer_inputs[layer],
                };
                let write = frozen[&(layer, writes)];
                let n = graph.add_node(Node::Module {
                    index,
                    label: design.module_label(index),
                    layer,
                    text: m.describe(),
                });
                graph.add_edge(read, n, "z".into());
                let how = format!("{:?}", m.effective_composition()).to_lowercase();
                graph.add_edge(n, write, how);
            }
        }
        Ok(DesignGraph { graph, layer_sets })
    }

    /// Graphviz text of the IR: frozen sublayers grey, modules coloured, one cluster per layer.
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph design {\n  rankdir=TB;\n  node [shape=box, fontsize=10];\n");
        let mut clusters: HashMap<usize, Vec<String>> = HashMap::new();
        for idx in self.graph.node_indices() {
            let id = idx.index();
            let (label, style, layer) = match &self.graph[idx] {
                Node::Embeddings => (
                    "embeddings".to_string(),
                    "style=filled, fillcolor=grey90",
                    None,
                ),
                Node::Head => (
                    "mean pool → classifier".to_string(),
                    "style=filled, fillcolor=lightyellow",
                    None,
                ),
                Node::Frozen { layer, part } => (
                    format!("{part:?}"),
                    "style=filled, fillcolor=grey90",
                    Some(*layer),
                ),
                Node::Module { label, text, .. } => (
                    format!("{label}: {text}"),
                    "style=\"filled,rounded\", fillcolor=lightblue",
                    Some(self.module_layer(idx)),
                ),
            };
            let line = format!(
                "  n{id} [label=\"{}\", {style}];\n",
                label.replace('"', "'")
            );
            match layer {
                Some(l) => clusters.entry(l).or_default().push(line),
                None => out.push_str(&line),
            }
        }
        let mut layers: Vec<_> = clusters.into_iter().collect();
        layers.sort_by_key(|(l, _)| *l);
        for (layer, lines) in layers {
            let _ = writeln!(
                out,
                "  subgraph cluster_{layer} {{\n    label=\"layer {layer}\";"
            );
            for line in lines {
                out.push_str("  ");
                out.push_str(&line);
            }
            out.push_str("  }\n");
        }
        for e in self.graph.edge_indices() {
            if let Some((a, b)) = self.graph.edge_endpoints(e) {
                let label = &self.graph[e];
                let _ = if label.is_empty() {
                    writeln!(out, "  n{} -> n{};", a.index(), b.index())
                } else {
                    writeln!(
                        out,
                        "  n{} -> n{} [label=\"{label}\", color=blue];",
                        a.index(),
                        b.index()
                    )
                };
            }
        }
        out.push_str("}\n");
        out
    }

    fn module_layer(&self, idx: NodeIndex) -> usize {
        match self.graph[idx] {
            Node::Module { layer, .. } | Node::Frozen { layer, .. } => layer,
            _ => 0,
        }
    }

    /// Number of module instances (module × layer) in the graph.
    pub fn module_instances(&self) -> usize {
        self.graph
            .node_weights()
            .filter(|n| matches!(n, Node::Module { .. }))
            .count()
    }
}

/// (the part a module reads `z` from — `None` for the layer input —, the part it writes to).
pub fn endpoints(site: Site, insertion: Insertion) -> (Option<Part>, Part) {
    let (parallel_input, output) = match site {
        Site::Attention => (None, Part::Output),
        Site::AttentionHeads => (None, Part::Heads),
        Site::Ffn => (Some(Part::AttentionNorm), Part::FfnOut),
        Site::Projection(p) => match p {
            Projection::Query => (None, Part::Query),
            Projection::Key => (None, Part::Key),
            Projection::Value => (None, Part::Value),
            Projection::Output => (Some(Part::Heads), Part::Output),
            Projection::FfnIn => (Some(Part::AttentionNorm), Part::FfnIn),
            Projection::FfnOut => (Some(Part::FfnIn), Part::FfnOut),
        },
    };
    match insertion {
        Insertion::Parallel => (parallel_input, output),
        Insertion::Sequential => (Some(output), output),
    }
}
