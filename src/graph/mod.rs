//! The petgraph IR of a design on a backbone: the frozen layers' points as nodes, their data flow
//! and every module instance as edges. Built only by validation; everything downstream walks it.

mod dot;
mod validate;

use crate::backbone::config::BackboneShape;
use crate::sites::{Insertion, Point, Site};
use crate::spec::{Composition, Design};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;
use thiserror::Error;

/// A design the backbone cannot host. Each variant names the module and the field at fault.
#[derive(Debug, Error, PartialEq)]
pub enum GraphError {
    /// A method's own rule ([`crate::methods::Method::check`]) or a site's.
    #[error("module {module}: field `{field}`: {message}")]
    Rule {
        module: String,
        field: &'static str,
        message: String,
    },
    #[error("module {module}: field `form.{field}`: width must be at least 1")]
    ZeroWidth { module: String, field: &'static str },
    #[error("module {module}: field `form.{field}`: width {width} is wider than the hidden size {hidden}")]
    TooWide {
        module: String,
        field: &'static str,
        width: usize,
        hidden: usize,
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

/// Validates `design` on `shape`: the graph of a design the backbone can host, or the first
/// rule it breaks.
pub fn validate(design: &Design, shape: &BackboneShape) -> Result<DesignGraph, GraphError> {
    DesignGraph::build(design, shape)
}

/// A node of the IR: a point of one frozen layer, or the ends of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Embeddings,
    Frozen { layer: usize, point: Point },
    Head,
}

/// One module instance: a module of the design on one layer, from the point it reads to the
/// point it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The module's index in the design.
    pub module: usize,
    /// `<module label>.layer<i>`: the prefix of its tensors' names.
    pub name: String,
    pub layer: usize,
    pub site: Site,
    pub insertion: Insertion,
    pub reads: Point,
    pub writes: Point,
    /// The composition used (the method's own where the design writes none).
    pub composition: Composition,
}

/// An edge of the IR: the frozen model's data flow, or a module instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Edge {
    Flow,
    Module(Instance),
}

/// The validated design as a graph on the backbone: the frozen data flow of every layer, and one
/// edge per module instance. Compilation, accounting, merging, the bench planner and `pets graph`
/// all walk its instances.
pub struct DesignGraph {
    pub graph: DiGraph<Node, Edge>,
    pub layer_sets: Vec<Vec<usize>>,
}

impl DesignGraph {
    /// Validates `design` on `shape` and builds its graph.
    pub fn build(design: &Design, shape: &BackboneShape) -> Result<DesignGraph, GraphError> {
        let layer_sets = validate::check(design, shape)?;
        let mut graph = DiGraph::new();
        let mut nodes: HashMap<(usize, Point), NodeIndex> = HashMap::new();
        let mut previous = graph.add_node(Node::Embeddings);
        for layer in 0..shape.layers {
            for &point in shape.family.points() {
                nodes.insert(
                    (layer, point),
                    graph.add_node(Node::Frozen { layer, point }),
                );
            }
            graph.add_edge(previous, nodes[&(layer, Point::LayerInput)], Edge::Flow);
            for &(from, to) in shape.family.flow() {
                graph.add_edge(nodes[&(layer, from)], nodes[&(layer, to)], Edge::Flow);
            }
            previous = nodes[&(layer, Point::FfnNorm)];
        }
        let head = graph.add_node(Node::Head);
        graph.add_edge(previous, head, Edge::Flow);
        for (index, (m, layers)) in design.modules.iter().zip(&layer_sets).enumerate() {
            let wiring = m.wiring();
            for &layer in layers {
                let instance = Instance {
                    module: index,
                    name: format!("{}.layer{layer}", design.module_label(index)),
                    layer,
                    site: m.site,
                    insertion: m.insertion,
                    reads: wiring.reads,
                    writes: wiring.writes,
                    composition: m.effective_composition(),
                };
                let (from, to) = (
                    nodes[&(layer, wiring.reads)],
                    nodes[&(layer, wiring.writes)],
                );
                graph.add_edge(from, to, Edge::Module(instance));
            }
        }
        Ok(DesignGraph { graph, layer_sets })
    }

    /// Every module instance, module by module in design order, layers ascending.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.graph.edge_weights().filter_map(|e| match e {
            Edge::Module(instance) => Some(instance),
            Edge::Flow => None,
        })
    }

    /// Number of module instances (module × layer) in the graph.
    pub fn module_instances(&self) -> usize {
        self.instances().count()
    }
}

#[cfg(test)]
#[path = "wiring_tests.rs"]
mod wiring_tests;
