//! The per-layer plan the encoder consults: the module instances attached at each site of a
//! layer, in the order the layer applies them, and how each joins its site's value.

use super::{Composer, Delta};
use crate::backbone::trace;
use crate::sites::Site;
use candle_core::{Result, Tensor};

/// How an attached instance changes its site's value `h`.
pub enum Join {
    /// `h ⊕ f(z)` by the module's composition.
    Composed {
        delta: Box<dyn Delta>,
        composer: Composer,
    },
    /// `h ⊙ l`, `l` a learned vector over the site's width.
    Rescale(Tensor),
}

/// One module instance attached at one site of one layer.
pub struct Attached {
    /// `<module label>.layer<i>`: the prefix of its tensors' names.
    pub label: String,
    pub join: Join,
}

impl Attached {
    /// `h` joined with this instance's update; `z` is what it reads.
    fn apply(&self, z: &Tensor, h: &Tensor) -> Result<Tensor> {
        match &self.join {
            Join::Composed { delta, composer } => composer.compose(h, &delta.forward(z)?, z),
            Join::Rescale(scale) => h.broadcast_mul(scale),
        }
    }
}

/// The modules writing to one site: parallel ones read the sublayer input and add; at most one
/// sequential module then reads the (already modified) output.
#[derive(Default)]
pub struct SiteModules {
    pub parallel: Vec<Attached>,
    pub sequential: Option<Attached>,
}

impl SiteModules {
    pub fn is_empty(&self) -> bool {
        self.parallel.is_empty() && self.sequential.is_none()
    }

    /// `h` modified by every module here; `z_parallel` is what parallel modules read.
    pub fn apply(&self, z_parallel: &Tensor, h: Tensor) -> Result<Tensor> {
        let mut out = h;
        for m in &self.parallel {
            let next = m.apply(z_parallel, &out)?;
            trace::module(&m.label, z_parallel, &out, &next);
            out = next;
        }
        if let Some(m) = &self.sequential {
            let next = m.apply(&out, &out)?;
            trace::module(&m.label, &out, &out, &next);
            out = next;
        }
        Ok(out)
    }
}

/// The sites a layer applies modules at, in the order it applies them (W_o's own modules before
/// the attention sublayer's, the second FFN projection's before the FFN sublayer's).
pub const SITE_ORDER: [Site; 10] = {
    use crate::sites::Projection::*;
    [
        Site::Projection(Query),
        Site::Projection(Key),
        Site::Projection(Value),
        Site::AttentionHeads,
        Site::Projection(Output),
        Site::Attention,
        Site::Projection(FfnIn),
        Site::FfnActivation,
        Site::Projection(FfnOut),
        Site::Ffn,
    ]
};

/// Everything a design attaches to one encoder layer.
#[derive(Default)]
pub struct LayerPlan {
    pub prefix: Option<super::prefix::Prefix>,
    sites: [SiteModules; 10],
}

impl LayerPlan {
    /// The modules at `site`.
    pub fn at(&self, site: Site) -> &SiteModules {
        &self.sites[slot(site)]
    }

    /// The modules at `site`, to attach more.
    pub fn at_mut(&mut self, site: Site) -> &mut SiteModules {
        &mut self.sites[slot(site)]
    }

    pub fn is_empty(&self) -> bool {
        self.prefix.is_none() && self.sites.iter().all(SiteModules::is_empty)
    }

    /// Every non-empty site with its modules, in the order the layer applies them.
    pub fn sites(&self) -> impl Iterator<Item = (Site, &SiteModules)> {
        SITE_ORDER
            .iter()
            .zip(&self.sites)
            .filter(|(_, m)| !m.is_empty())
            .map(|(s, m)| (*s, m))
    }
}

/// The index of `site` in [`SITE_ORDER`] (a match, so a new site cannot be forgotten).
fn slot(site: Site) -> usize {
    use crate::sites::Projection::*;
    match site {
        Site::Projection(Query) => 0,
        Site::Projection(Key) => 1,
        Site::Projection(Value) => 2,
        Site::AttentionHeads => 3,
        Site::Projection(Output) => 4,
        Site::Attention => 5,
        Site::Projection(FfnIn) => 6,
        Site::FfnActivation => 7,
        Site::Projection(FfnOut) => 8,
        Site::Ffn => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_site_has_its_own_slot_in_order() {
        for (i, site) in SITE_ORDER.iter().enumerate() {
            assert_eq!(slot(*site), i, "{site:?}");
        }
    }
}
