//! IA³ in Hugging Face PEFT's `IA3` terms: which projection carries each vector, and whether
//! PEFT scales that projection's input (a `feedforward_modules` entry) or its output.

use crate::sites::{Projection, Site};

/// Where PEFT's IA3 puts the vector of a pets IA³ module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeftIa3Target {
    /// The `nn.Linear` PEFT wraps.
    pub projection: Projection,
    /// PEFT multiplies the Linear's input (shape `(1, in)`) rather than its output
    /// (shape `(out, 1)`).
    pub feedforward: bool,
}

/// The PEFT target of an IA³ vector at `site` (pets rescales the site in place, Sequential):
/// a projection's output (bias included, as PEFT's output scaling) is that projection's
/// output; the attention and FFN sublayer outputs are W_o's and the second FFN projection's;
/// the FFN activation is the second FFN projection's input. Err says why a site has none.
pub fn peft_target(site: Site) -> Result<PeftIa3Target, String> {
    let output = |projection| PeftIa3Target {
        projection,
        feedforward: false,
    };
    match site {
        Site::Projection(p) => Ok(output(p)),
        Site::Attention => Ok(output(Projection::Output)),
        Site::Ffn => Ok(output(Projection::FfnOut)),
        Site::FfnActivation => Ok(PeftIa3Target {
            projection: Projection::FfnOut,
            feedforward: true,
        }),
        Site::AttentionHeads => Err("a per-head site has no single Linear for PEFT to wrap".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activation_is_the_second_ffn_projections_input() {
        let t = peft_target(Site::FfnActivation).unwrap();
        assert_eq!((t.projection, t.feedforward), (Projection::FfnOut, true));
        let t = peft_target(Site::Projection(Projection::Key)).unwrap();
        assert_eq!((t.projection, t.feedforward), (Projection::Key, false));
        assert!(peft_target(Site::AttentionHeads).is_err());
    }
}
