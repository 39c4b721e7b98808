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
///
/// A pack of designs ([`crate::pack`]) fills `groups` instead: one entry per design, each
/// applied to its own equal share of the rows (design k owns rows `k·b..(k+1)·b`).
#[derive(Default)]
pub struct SiteModules {
    pub parallel: Vec<Attached>,
    pub sequential: Option<Attached>,
    pub groups: Vec<SiteModules>,
}

impl SiteModules {
    pub fn is_empty(&self) -> bool {
        self.parallel.is_empty()
            && self.sequential.is_none()
            && self.groups.iter().all(SiteModules::is_empty)
    }

    /// `h` modified by every module here; `z_parallel` is what parallel modules read.
    pub fn apply(&self, z_parallel: &Tensor, h: Tensor) -> Result<Tensor> {
        if !self.groups.is_empty() && !self.is_empty() {
            return self.apply_groups(z_parallel, h);
        }
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

    /// Each group's modules on its rows of `z` and `h`, joined again in row order; a group
    /// without modules leaves its rows as they are. Stacked products where the site allows them
    /// ([`crate::pack::apply_stacked`]), else one slice per group.
    fn apply_groups(&self, z_parallel: &Tensor, h: Tensor) -> Result<Tensor> {
        if let Some(out) = crate::pack::apply_stacked(&self.groups, z_parallel, &h)? {
            return Ok(out);
        }
        // Only groups with modules slice `h` (a slice's gradient is a zero-padded full-size
        // tensor); the others contribute zero rows to the update added to all of `h`.
        let rows = h.dim(0)? / self.groups.len();
        let mut updates = Vec::with_capacity(self.groups.len());
        for (k, group) in self.groups.iter().enumerate() {
            updates.push(match group.is_empty() {
                true => {
                    let mut shape = h.dims().to_vec();
                    shape[0] = rows;
                    Tensor::zeros(shape, h.dtype(), h.device())?
                }
                false => {
                    let h_k = h.narrow(0, k * rows, rows)?;
                    let z_k = z_parallel.narrow(0, k * rows, rows)?;
                    (group.apply(&z_k, h_k.clone())? - h_k)?
                }
            });
        }
        h + Tensor::cat(&updates, 0)?
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

/// The keys and values a layer prepends to its attention: one design's prefix, or the prefixes
/// of a pack of designs (each on its own rows, padded to the longest with masked slots).
pub enum LayerPrefix {
    Single(super::prefix::Prefix),
    Packed(crate::pack::PackedPrefix),
}

impl From<super::prefix::Prefix> for LayerPrefix {
    fn from(prefix: super::prefix::Prefix) -> Self {
        LayerPrefix::Single(prefix)
    }
}

impl LayerPrefix {
    /// The prefix's tensor-name prefix (`<module label>.layer<i>`), or `packed` for a pack.
    pub fn label(&self) -> &str {
        match self {
            LayerPrefix::Single(p) => p.label(),
            LayerPrefix::Packed(_) => "packed",
        }
    }

    /// Keys and values (b, heads, t, head_dim) with the prefix in front, and the additive mask
    /// (b, 1, 1, t) extended to match.
    pub fn extend(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        match self {
            LayerPrefix::Single(p) => p.extend(k, v, mask),
            LayerPrefix::Packed(p) => p.extend(k, v, mask),
        }
    }

    /// [`LayerPrefix::extend`] for keys and values whose heads are not yet split (b, t, hidden).
    pub fn extend_merged(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        match self {
            LayerPrefix::Single(p) => p.extend_merged(k, v, mask),
            LayerPrefix::Packed(p) => p.extend_merged(k, v, mask),
        }
    }
}

/// Everything a design attaches to one encoder layer.
#[derive(Default)]
pub struct LayerPlan {
    pub prefix: Option<LayerPrefix>,
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

    /// Every site's modules in [`SITE_ORDER`], to take them apart (a pack moves them).
    pub fn sites_mut(&mut self) -> impl Iterator<Item = (Site, &mut SiteModules)> {
        SITE_ORDER.iter().copied().zip(self.sites.iter_mut())
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
