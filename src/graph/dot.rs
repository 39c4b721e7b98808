//! Graphviz text of the IR: frozen points grey in one cluster per layer, module instances as
//! blue edges labelled with the module, so the picture is the wiring the compiler walks.

use super::{DesignGraph, Edge, Node};
use crate::spec::Design;
use std::collections::BTreeMap;
use std::fmt::Write;

impl DesignGraph {
    /// The graph in DOT; `design` names and describes the modules.
    pub fn to_dot(&self, design: &Design) -> String {
        let mut out =
            String::from("digraph design {\n  rankdir=TB;\n  node [shape=box, fontsize=10];\n");
        let mut clusters: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for idx in self.graph.node_indices() {
            let id = idx.index();
            let (label, style, layer) = match &self.graph[idx] {
                Node::Embeddings => ("embeddings".to_string(), "grey90", None),
                Node::Head => ("mean pool → classifier".to_string(), "lightyellow", None),
                Node::Frozen { layer, point } => (format!("{point:?}"), "grey90", Some(*layer)),
            };
            let line = format!("  n{id} [label=\"{label}\", style=filled, fillcolor={style}];\n");
            match layer {
                Some(l) => clusters.entry(l).or_default().push(line),
                None => out.push_str(&line),
            }
        }
        for (layer, lines) in clusters {
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
            let Some((a, b)) = self.graph.edge_endpoints(e) else {
                continue;
            };
            let _ = match &self.graph[e] {
                Edge::Flow => writeln!(out, "  n{} -> n{};", a.index(), b.index()),
                Edge::Module(instance) => {
                    let text = design
                        .modules
                        .get(instance.module)
                        .map_or(String::new(), |m| m.describe());
                    let label = format!("{}: {text}", design.module_label(instance.module));
                    writeln!(
                        out,
                        "  n{} -> n{} [label=\"{}\", color=blue, fontcolor=blue];",
                        a.index(),
                        b.index(),
                        label.replace('"', "'")
                    )
                }
            };
        }
        out.push_str("}\n");
        out
    }
}
