//! The shared vocabulary of insertion points: what a design names (sites, insertion), what a
//! backbone family exposes (points inside one layer), and the one table joining the two.

use serde::{Deserialize, Serialize};

/// One projection matrix of a Transformer layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Projection {
    Query,
    Key,
    Value,
    Output,
    FfnIn,
    FfnOut,
}

/// The representation a module modifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Site {
    /// The attention sublayer's output (after W_o, before the residual and layer norm).
    Attention,
    /// Each head's output before W_o: one module per head, width split across heads.
    AttentionHeads,
    /// The FFN sublayer's output (after the second projection, before residual and layer norm).
    Ffn,
    /// One projection matrix's output.
    Projection(Projection),
    /// The FFN's intermediate activation after its nonlinearity (`d_ffn` wide): what the second
    /// FFN projection reads, and what IA³ rescales.
    FfnActivation,
}

/// Where the module reads `z` from: the site's output (sequential) or the sublayer's input (parallel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Insertion {
    Sequential,
    #[default]
    Parallel,
}

/// Backbone tensors a design trains alongside its modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BackbonePart {
    LayerNorms,
    Biases,
    All,
}

/// A tensor inside one layer of a frozen model that a module can read or write: the layer's
/// input and the outputs of its sublayers, in the order a layer computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Point {
    /// The hidden states entering the layer.
    LayerInput,
    Query,
    Key,
    Value,
    /// The heads' concatenated outputs, before W_o.
    Heads,
    /// W_o's output (the attention sublayer's output before its residual).
    Output,
    /// The attention sublayer after its residual and layer norm: what the FFN reads.
    AttentionNorm,
    /// The first FFN projection's output, before the nonlinearity.
    FfnIn,
    /// The nonlinearity's output.
    FfnActivation,
    /// The second FFN projection's output (the FFN sublayer's output before its residual).
    FfnOut,
    /// The layer's output.
    FfnNorm,
}

impl Point {
    /// Every point, in layer order.
    pub const ALL: [Point; 11] = [
        Point::LayerInput,
        Point::Query,
        Point::Key,
        Point::Value,
        Point::Heads,
        Point::Output,
        Point::AttentionNorm,
        Point::FfnIn,
        Point::FfnActivation,
        Point::FfnOut,
        Point::FfnNorm,
    ];
}

/// Which width a point carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Hidden,
    Ffn,
}

/// How a module at a site joins the layer: the point it reads `z` from, the point whose value it
/// modifies, and their widths. This is the one site table: the graph, the compiler, the
/// accounting, merging and the bench planner all read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wiring {
    pub reads: Point,
    pub writes: Point,
    pub z_width: Width,
    pub out_width: Width,
}

impl Wiring {
    /// The wiring of a module at `site` inserted as `insertion`.
    pub fn of(site: Site, insertion: Insertion) -> Wiring {
        use Width::{Ffn, Hidden};
        // (what a parallel module reads, the point written, the widths of both)
        let (parallel_input, writes, z_width, out_width) = match site {
            Site::Attention => (Point::LayerInput, Point::Output, Hidden, Hidden),
            Site::AttentionHeads => (Point::LayerInput, Point::Heads, Hidden, Hidden),
            Site::Ffn => (Point::AttentionNorm, Point::FfnOut, Hidden, Hidden),
            Site::FfnActivation => (Point::FfnIn, Point::FfnActivation, Ffn, Ffn),
            Site::Projection(p) => match p {
                Projection::Query => (Point::LayerInput, Point::Query, Hidden, Hidden),
                Projection::Key => (Point::LayerInput, Point::Key, Hidden, Hidden),
                Projection::Value => (Point::LayerInput, Point::Value, Hidden, Hidden),
                Projection::Output => (Point::Heads, Point::Output, Hidden, Hidden),
                Projection::FfnIn => (Point::AttentionNorm, Point::FfnIn, Hidden, Ffn),
                Projection::FfnOut => (Point::FfnActivation, Point::FfnOut, Ffn, Hidden),
            },
        };
        match insertion {
            Insertion::Parallel => Wiring {
                reads: parallel_input,
                writes,
                z_width,
                out_width,
            },
            Insertion::Sequential => Wiring {
                reads: writes,
                writes,
                z_width: out_width,
                out_width,
            },
        }
    }
}

impl Site {
    /// Whether parallel modules may sit here. Not at `FfnActivation`: the nonlinearity runs
    /// fused with the first FFN projection, so no module can read its input there
    /// (`Projection(FfnIn)` is where to read it).
    pub fn takes_parallel(self) -> bool {
        self != Site::FfnActivation
    }

    /// A short name for tensor labels and tables (`q`, `ffn`, `heads`, …).
    pub fn short_name(self) -> &'static str {
        match self {
            Site::Attention => "attention",
            Site::AttentionHeads => "heads",
            Site::Ffn => "ffn",
            Site::FfnActivation => "act",
            Site::Projection(Projection::Query) => "q",
            Site::Projection(Projection::Key) => "k",
            Site::Projection(Projection::Value) => "v",
            Site::Projection(Projection::Output) => "o",
            Site::Projection(Projection::FfnIn) => "ffn_in",
            Site::Projection(Projection::FfnOut) => "ffn_out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_modules_read_what_they_write_and_parallel_ones_read_upstream() {
        for site in [
            Site::Attention,
            Site::AttentionHeads,
            Site::Ffn,
            Site::FfnActivation,
            Site::Projection(Projection::FfnIn),
            Site::Projection(Projection::FfnOut),
        ] {
            let seq = Wiring::of(site, Insertion::Sequential);
            assert_eq!(seq.reads, seq.writes, "{site:?}");
            let par = Wiring::of(site, Insertion::Parallel);
            assert!(par.reads < par.writes, "{site:?}: {par:?}");
            assert!(
                crate::backbone::family::Family::Bert
                    .flow()
                    .iter()
                    .any(|(_, to)| *to == par.writes),
                "{site:?} writes a point the layer computes"
            );
        }
        let ffn_out = Wiring::of(Site::Projection(Projection::FfnOut), Insertion::Parallel);
        assert_eq!(
            (ffn_out.z_width, ffn_out.out_width),
            (Width::Ffn, Width::Hidden)
        );
    }
}
