//! The prefixes of a pack's designs at one layer as one: each design's keys and values on its own
//! rows, padded to the longest prefix with slots the mask hides.

use crate::backbone::encoder::MASKED;
use crate::methods::prefix::Prefix;
use candle_core::{Result, Tensor};

/// One layer's prefixes of a pack, in the pack's design order (`None`: no prefix there).
pub struct PackedPrefix {
    members: Vec<Option<Prefix>>,
    longest: usize,
}

impl PackedPrefix {
    /// Joins the members' prefixes of one layer; `longest` is the longest of their lengths.
    pub(crate) fn new(members: Vec<Option<Prefix>>) -> Result<Self> {
        let mut longest = 0;
        for prefix in members.iter().flatten() {
            longest = longest.max(prefix.key_values()?.0.dim(0)?);
        }
        Ok(PackedPrefix { members, longest })
    }

    /// Gives the members' prefixes back, in order.
    pub(crate) fn into_members(self) -> Vec<Option<Prefix>> {
        self.members
    }

    /// Every member's (keys, values), each (longest, width), zero-padded, and its mask row
    /// (longest): 0 over its own prefix, masked over the padding.
    fn padded(&self, width: usize, like: &Tensor) -> Result<Vec<(Tensor, Tensor, Tensor)>> {
        let (dtype, device) = (like.dtype(), like.device());
        let longest = self.longest;
        let mut out = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let (keys, values, l) = match member {
                Some(prefix) => {
                    let (k, v) = prefix.key_values()?;
                    let l = k.dim(0)?;
                    (k, v, l)
                }
                None => {
                    let zeros = Tensor::zeros((0, width), dtype, device)?;
                    (zeros.clone(), zeros, 0)
                }
            };
            let pad = |t: Tensor| -> Result<Tensor> {
                if l == longest {
                    return Ok(t);
                }
                let zeros = Tensor::zeros((longest - l, width), dtype, device)?;
                Tensor::cat(&[&t, &zeros], 0)
            };
            let mut mask = vec![0f32; l];
            mask.resize(longest, MASKED);
            let mask = Tensor::from_vec(mask, longest, device)?.to_dtype(dtype)?;
            out.push((pad(keys)?, pad(values)?, mask));
        }
        Ok(out)
    }

    /// The additive mask (b, 1, 1, t) with each member's prefix mask in front of its rows.
    fn extend_mask(&self, mask: &Tensor, masks: Vec<Tensor>) -> Result<Tensor> {
        let rows = mask.dim(0)? / self.members.len();
        let front = masks
            .into_iter()
            .map(|m| {
                m.reshape((1, 1, 1, self.longest))?
                    .broadcast_as((rows, 1, 1, self.longest))
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&[&Tensor::cat(&front, 0)?, mask], 3)
    }

    /// Prepends each member's prefix to its rows of the per-head keys and values
    /// (b, heads, t, head_dim) and extends the mask (b, 1, 1, t) to match.
    pub fn extend(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, heads, _, head_dim) = k.dims4()?;
        let rows = b / self.members.len();
        let longest = self.longest;
        let per_head = |p: &Tensor| -> Result<Tensor> {
            p.reshape((1, longest, heads, head_dim))?
                .transpose(1, 2)?
                .broadcast_as((rows, heads, longest, head_dim))?
                .contiguous()
        };
        let (mut keys, mut values, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        for (pk, pv, m) in self.padded(heads * head_dim, k)? {
            keys.push(per_head(&pk)?);
            values.push(per_head(&pv)?);
            masks.push(m);
        }
        let k = Tensor::cat(&[&Tensor::cat(&keys, 0)?, k], 2)?;
        let v = Tensor::cat(&[&Tensor::cat(&values, 0)?, v], 2)?;
        Ok((k, v, self.extend_mask(mask, masks)?))
    }

    /// [`PackedPrefix::extend`] for keys and values whose heads are not yet split (b, t, width).
    pub fn extend_merged(
        &self,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, _, width) = k.dims3()?;
        let rows = b / self.members.len();
        let longest = self.longest;
        let batch = |p: &Tensor| p.unsqueeze(0)?.broadcast_as((rows, longest, width));
        let (mut keys, mut values, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        for (pk, pv, m) in self.padded(width, k)? {
            keys.push(batch(&pk)?);
            values.push(batch(&pv)?);
            masks.push(m);
        }
        let k = Tensor::cat(&[&Tensor::cat(&keys, 0)?, k], 1)?;
        let v = Tensor::cat(&[&Tensor::cat(&values, 0)?, v], 1)?;
        Ok((k, v, self.extend_mask(mask, masks)?))
    }
}
