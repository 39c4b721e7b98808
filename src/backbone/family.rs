//! The seam between pets and a family of frozen models: each family's name, the insertion points
//! its layers expose (in the shared vocabulary of [`crate::sites`]) and its checkpoint's tensor
//! names, which export and merging use. BERT is the first family.

use super::config::BackboneShape;
use crate::sites::{Point, Projection};

/// A family of frozen Transformers pets hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Post-LN BERT encoders (`model_type: "bert"`): all-MiniLM, BERT, …
    Bert,
}

impl Family {
    /// The family's name in reports and errors.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bert => "bert",
        }
    }

    /// The points inside one layer that modules may read and write.
    pub fn points(self) -> &'static [Point] {
        match self {
            Family::Bert => &Point::ALL,
        }
    }

    /// The frozen data flow inside one layer between those points: (from, to) for every edge.
    pub fn flow(self) -> &'static [(Point, Point)] {
        match self {
            Family::Bert => &BERT_FLOW,
        }
    }

    /// The checkpoint path of a projection in layer `layer` (`encoder.layer.3.attention.self.query`).
    pub fn projection_module(self, layer: usize, projection: Projection) -> String {
        match self {
            Family::Bert => format!("encoder.layer.{layer}.{}", self.projection_path(projection)),
        }
    }

    /// A projection's path inside one layer (`attention.self.query`).
    pub fn projection_path(self, projection: Projection) -> &'static str {
        match self {
            Family::Bert => bert_projection(projection),
        }
    }

    /// Every tensor as run (checkpoint name, element count).
    pub fn tensor_inventory(self, shape: &BackboneShape) -> Vec<(String, usize)> {
        match self {
            Family::Bert => bert_inventory(shape),
        }
    }
}

/// A BERT layer's frozen data flow: (from, to) for every edge.
const BERT_FLOW: [(Point, Point); 14] = [
    (Point::LayerInput, Point::Query),
    (Point::LayerInput, Point::Key),
    (Point::LayerInput, Point::Value),
    (Point::Query, Point::Heads),
    (Point::Key, Point::Heads),
    (Point::Value, Point::Heads),
    (Point::Heads, Point::Output),
    (Point::Output, Point::AttentionNorm),
    (Point::LayerInput, Point::AttentionNorm),
    (Point::AttentionNorm, Point::FfnIn),
    (Point::FfnIn, Point::FfnActivation),
    (Point::FfnActivation, Point::FfnOut),
    (Point::FfnOut, Point::FfnNorm),
    (Point::AttentionNorm, Point::FfnNorm),
];

/// Where a projection lives inside an HF BERT layer.
fn bert_projection(p: Projection) -> &'static str {
    match p {
        Projection::Query => "attention.self.query",
        Projection::Key => "attention.self.key",
        Projection::Value => "attention.self.value",
        Projection::Output => "attention.output.dense",
        Projection::FfnIn => "intermediate.dense",
        Projection::FfnOut => "output.dense",
    }
}

/// BERT's embeddings and layers (no pooler: pets pools by the mean).
fn bert_inventory(shape: &BackboneShape) -> Vec<(String, usize)> {
    let (d, f) = (shape.hidden, shape.ffn);
    let mut out = vec![
        ("embeddings.word_embeddings.weight".into(), shape.vocab * d),
        (
            "embeddings.position_embeddings.weight".into(),
            shape.max_positions * d,
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            shape.type_vocab * d,
        ),
        ("embeddings.LayerNorm.weight".into(), d),
        ("embeddings.LayerNorm.bias".into(), d),
    ];
    for i in 0..shape.layers {
        let p = format!("encoder.layer.{i}");
        for (proj, rows, cols) in [
            (Projection::Query, d, d),
            (Projection::Key, d, d),
            (Projection::Value, d, d),
            (Projection::Output, d, d),
        ] {
            out.push((format!("{p}.{}.weight", bert_projection(proj)), rows * cols));
            out.push((format!("{p}.{}.bias", bert_projection(proj)), rows));
            if proj == Projection::Output {
                out.push((format!("{p}.attention.output.LayerNorm.weight"), d));
                out.push((format!("{p}.attention.output.LayerNorm.bias"), d));
            }
        }
        out.push((format!("{p}.intermediate.dense.weight"), d * f));
        out.push((format!("{p}.intermediate.dense.bias"), f));
        out.push((format!("{p}.output.dense.weight"), f * d));
        out.push((format!("{p}.output.dense.bias"), d));
        out.push((format!("{p}.output.LayerNorm.weight"), d));
        out.push((format!("{p}.output.LayerNorm.bias"), d));
    }
    out
}
