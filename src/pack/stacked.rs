//! One site of a pack as batched products: every design's low-rank module (LoRA, bottleneck) at
//! the site runs as one `(K, B·T, in) × (K, in, r)` product on the stacked rows, every rescale as
//! one broadcast product, so that neither the forward nor the backward pass slices the site's
//! full-width rows per design (a slice's gradient is a full-size zero-padded tensor, K of them
//! per site).

use crate::methods::bottleneck::{activate, Activation};
use crate::methods::{Attached, Join, SiteModules};
use candle_core::{DType, Device, Result, Tensor};

/// What one design does at the site, when the site can run stacked.
enum Part<'a> {
    Nothing,
    /// `h ⊙ l`.
    Rescale(&'a Tensor),
    /// `h + c·s·(f(x·Aᵀ + a)·Bᵀ + b)`: `c` the composition's fixed scale, folded in with `s`;
    /// `x` the sublayer input (`true`: parallel) or the site's value (sequential).
    LowRank(crate::methods::LowRank<'a>, f64, bool),
}

/// `h` modified by every group's modules, each on its own rows, as stacked products; `None`
/// where the site's groups do not all fit that form (more than one module in a group, a gate or
/// a learned scale, per-head bottlenecks): the caller then slices per group. Parallel and
/// sequential modules mix, as do activations: each group's rows of the product's input are
/// taken from what its module reads, and of its activation, by row masks.
pub(crate) fn apply_stacked(
    groups: &[SiteModules],
    z_parallel: &Tensor,
    h: &Tensor,
) -> Result<Option<Tensor>> {
    let Some(parts) = classify(groups) else {
        return Ok(None);
    };
    let k = groups.len();
    let (rows, t, width) = match h.dims() {
        &[rows, t, width] if rows % k == 0 => (rows, t, width),
        _ => return Ok(None),
    };
    let per = rows / k * t;
    let mut out = h.clone();
    if parts.iter().any(|p| matches!(p, Part::Rescale(_))) {
        let ones = Tensor::ones(width, h.dtype(), h.device())?;
        let scales: Vec<Tensor> = parts
            .iter()
            .map(|p| match p {
                Part::Rescale(l) => l.flatten_all(),
                _ => Ok(ones.clone()),
            })
            .collect::<Result<_>>()?;
        let scales = Tensor::stack(&scales, 0)?.unsqueeze(1)?; // (K, 1, W)
        out = out
            .reshape((k, per, width))?
            .broadcast_mul(&scales)?
            .reshape((rows, t, width))?;
    }
    let low: Vec<_> = parts
        .iter()
        .map(|p| match p {
            Part::LowRank(lr, c, parallel) => Some((lr, *c, *parallel)),
            _ => None,
        })
        .collect();
    let Some(&(first, _, _)) = low.iter().flatten().next() else {
        return Ok(Some(out));
    };
    let reads_input: Vec<bool> = low.iter().flatten().map(|(_, _, p)| *p).collect();
    let x = if reads_input.iter().all(|&p| p) {
        z_parallel.reshape((k, per, z_parallel.dim(2)?))?
    } else if !reads_input.iter().any(|&p| p) {
        h.reshape((k, per, width))?
    } else if z_parallel.dims() == h.dims() {
        let mask = row_mask(&low, |(_, _, parallel)| parallel, h)?;
        let z = z_parallel.reshape((k, per, width))?.broadcast_mul(&mask)?;
        (z + h.reshape((k, per, width))?.broadcast_mul(&(1.0 - &mask)?)?)?
    } else {
        return Ok(None);
    };
    let input = x.dim(2)?;
    let r = low.iter().flatten().map(|(lr, _, _)| lr.down.dim(0));
    let r = r
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    let (dtype, device) = (h.dtype(), h.device());
    let stack = |pick: &dyn Fn(&crate::methods::LowRank) -> Option<Tensor>,
                 shape: (usize, usize)| {
        let rows: Vec<Tensor> = low
            .iter()
            .map(|entry| match entry.and_then(|(lr, _, _)| pick(lr)) {
                Some(t) => pad_to(&t, shape, dtype, device),
                None => Tensor::zeros(shape, dtype, device),
            })
            .collect::<Result<_>>()?;
        Tensor::stack(&rows, 0)
    };
    let down = stack(&|lr| Some(lr.down.clone()), (r, input))?; // (K, r, in)
    let up = stack(&|lr| Some(lr.up.clone()), (width, r))?; // (K, W, r)
    let mut hidden = x.matmul(&down.transpose(1, 2)?)?;
    if low
        .iter()
        .flatten()
        .any(|(lr, _, _)| lr.down_bias.is_some())
    {
        let bias = stack(
            &|lr| lr.down_bias.map(|b| b.reshape((1, b.elem_count())).ok())?,
            (1, r),
        )?;
        hidden = hidden.broadcast_add(&bias)?;
    }
    let hidden = activate_each(&hidden, &low, first.activation, h)?;
    let mut delta = hidden.matmul(&up.transpose(1, 2)?)?;
    if low.iter().flatten().any(|(lr, _, _)| lr.up_bias.is_some()) {
        let bias = stack(
            &|lr| lr.up_bias.map(|b| b.reshape((1, b.elem_count())).ok())?,
            (1, width),
        )?;
        delta = delta.broadcast_add(&bias)?;
    }
    let scales: Vec<f32> = low
        .iter()
        .map(|e| e.map_or(0.0, |(lr, c, _)| (lr.scale * c) as f32))
        .collect();
    let scales = Tensor::from_vec(scales, (k, 1, 1), device)?.to_dtype(dtype)?;
    let delta = delta.broadcast_mul(&scales)?.reshape((rows, t, width))?;
    Ok(Some((out + delta)?))
}

/// One design's low-rank module at the site: the module, its fixed scale, whether it reads the
/// sublayer input; `None` for a design with none.
type LowRankEntry<'a, 'b> = Option<(&'b crate::methods::LowRank<'a>, f64, bool)>;

/// A `(K, 1, 1)` mask, 1 on the rows of the designs whose low-rank module `holds`.
fn row_mask(
    low: &[LowRankEntry],
    holds: impl Fn((&crate::methods::LowRank, f64, bool)) -> bool,
    like: &Tensor,
) -> Result<Tensor> {
    let mask: Vec<f32> = low
        .iter()
        .map(|e| f32::from(u8::from(e.is_some_and(&holds))))
        .collect();
    Tensor::from_vec(mask, (low.len(), 1, 1), like.device())?.to_dtype(like.dtype())
}

/// `hidden` (K, rows, r) through each design's activation: one pass where all share one, else
/// one pass per activation in use, each kept on its designs' rows by a mask (the bottleneck
/// width is small, so the extra passes cost little next to a second product).
fn activate_each(
    hidden: &Tensor,
    low: &[LowRankEntry],
    first: Activation,
    like: &Tensor,
) -> Result<Tensor> {
    let mut used: Vec<Activation> = Vec::new();
    for (lr, _, _) in low.iter().flatten() {
        if !used.contains(&lr.activation) {
            used.push(lr.activation);
        }
    }
    if used.len() <= 1 {
        return activate(hidden, first);
    }
    let mut out: Option<Tensor> = None;
    for activation in used {
        let mask = row_mask(low, |(lr, _, _)| lr.activation == activation, like)?;
        let part = activate(hidden, activation)?.broadcast_mul(&mask)?;
        out = Some(match out {
            None => part,
            Some(acc) => (acc + part)?,
        });
    }
    // `used` has at least two entries here, so `out` is set.
    out.map_or_else(|| activate(hidden, first), Ok)
}

/// Each group's one part; `None` where the site cannot run stacked.
fn classify(groups: &[SiteModules]) -> Option<Vec<Part<'_>>> {
    let mut parts = Vec::with_capacity(groups.len());
    for group in groups {
        if !group.groups.is_empty() {
            return None;
        }
        let (attached, parallel) = match (&group.parallel[..], &group.sequential) {
            ([], None) => {
                parts.push(Part::Nothing);
                continue;
            }
            ([one], None) => (one, true),
            ([], Some(one)) => (one, false),
            _ => return None,
        };
        parts.push(part_of(attached, parallel)?);
    }
    Some(parts)
}

fn part_of(attached: &Attached, parallel: bool) -> Option<Part<'_>> {
    match &attached.join {
        Join::Rescale(l) => Some(Part::Rescale(l)),
        Join::Composed { delta, composer } => Some(Part::LowRank(
            delta.low_rank()?,
            composer.fixed_scale()?,
            parallel,
        )),
    }
}

/// `t` (rows, cols) padded with zero rows and columns to `shape`.
fn pad_to(t: &Tensor, shape: (usize, usize), dtype: DType, device: &Device) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    let mut t = t.clone();
    if cols < shape.1 {
        t = Tensor::cat(
            &[&t, &Tensor::zeros((rows, shape.1 - cols), dtype, device)?],
            1,
        )?;
    }
    if rows < shape.0 {
        t = Tensor::cat(
            &[
                &t,
                &Tensor::zeros((shape.0 - rows, shape.1), dtype, device)?,
            ],
            0,
        )?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::bottleneck::Bottleneck;
    use crate::methods::lora::Lora;
    use crate::methods::{Composer, Fill, ParamStore};
    use candle_core::Var;

    fn lora(store: &mut ParamStore, name: &str, r: usize) -> Attached {
        let fills = (Fill::Uniform(0.3), Fill::Uniform(0.3));
        let delta = Lora::new(store, name, (6, r, 6), 2.0 * r as f32, fills).unwrap();
        Attached {
            label: name.into(),
            join: Join::Composed {
                delta: Box::new(delta),
                composer: Composer::Add,
            },
        }
    }

    fn bottleneck(store: &mut ParamStore, name: &str, r: usize, s: f64) -> Attached {
        let fills = (Fill::Uniform(0.3), Fill::Uniform(0.3));
        let delta = Bottleneck::new(store, name, (6, r, 6), Activation::Relu, fills).unwrap();
        let composer = Composer::Scaled(s);
        Attached {
            label: name.into(),
            join: Join::Composed {
                delta: Box::new(delta),
                composer,
            },
        }
    }

    fn rescale(store: &mut ParamStore, name: &str) -> Attached {
        let l = store.var(name, &[6], Fill::NormalAround(1.0, 0.2)).unwrap();
        Attached {
            label: name.into(),
            join: Join::Rescale(l),
        }
    }

    fn parallel(m: Attached) -> SiteModules {
        SiteModules {
            parallel: vec![m],
            ..SiteModules::default()
        }
    }

    fn sequential(m: Attached) -> SiteModules {
        SiteModules {
            sequential: Some(m),
            ..SiteModules::default()
        }
    }

    /// A case: its name, the groups it builds, whether they stack.
    type Case = (&'static str, fn(&mut ParamStore) -> Vec<SiteModules>, bool);

    /// Stacked, sliced per group: the values and every gradient agree; the mixes that cannot
    /// stack are declined.
    #[test]
    fn stacked_sites_match_slicing_per_group() {
        let cases: Vec<Case> = vec![
            (
                "loras of two ranks and an empty group",
                |s| {
                    vec![
                        parallel(lora(s, "a", 2)),
                        SiteModules::default(),
                        parallel(lora(s, "b", 4)),
                    ]
                },
                true,
            ),
            (
                "bottlenecks and rescales",
                |s| {
                    vec![
                        sequential(bottleneck(s, "a", 3, 1.0)),
                        parallel(rescale(s, "b")),
                        sequential(bottleneck(s, "c", 5, 4.0)),
                    ]
                },
                true,
            ),
            (
                "parallel and sequential low-rank modules",
                |s| {
                    vec![
                        parallel(lora(s, "a", 2)),
                        sequential(bottleneck(s, "b", 3, 1.0)),
                        SiteModules::default(),
                        parallel(bottleneck(s, "c", 4, 2.0)),
                    ]
                },
                true,
            ),
            (
                "a learned scale",
                |s| {
                    let mut learned = bottleneck(s, "a", 2, 1.0);
                    if let Join::Composed { composer, .. } = &mut learned.join {
                        *composer =
                            Composer::Learned(Tensor::ones(1, DType::F32, &Device::Cpu).unwrap());
                    }
                    vec![parallel(learned), parallel(lora(s, "b", 2))]
                },
                false,
            ),
            (
                "two modules in one group",
                |s| {
                    let mut two = parallel(lora(s, "a", 2));
                    two.sequential = Some(bottleneck(s, "b", 3, 1.0));
                    vec![two, parallel(lora(s, "c", 2))]
                },
                false,
            ),
        ];
        for (name, build, stacks) in cases {
            let device = Device::Cpu;
            let mut store = ParamStore::new(7, &device);
            let groups = build(&mut store);
            let k = groups.len();
            let z = Var::randn(0f32, 1.0, (k * 2, 3, 6), &device).unwrap();
            let h = Var::randn(0f32, 1.0, (k * 2, 3, 6), &device).unwrap();
            let stacked = apply_stacked(&groups, &z, &h).unwrap();
            assert_eq!(stacked.is_some(), stacks, "{name}");
            let Some(stacked) = stacked else { continue };
            let sliced: Vec<Tensor> = groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let (zi, hi) = (
                        z.narrow(0, 2 * i, 2).unwrap(),
                        h.narrow(0, 2 * i, 2).unwrap(),
                    );
                    match g.is_empty() {
                        true => hi,
                        false => g.apply(&zi, hi).unwrap(),
                    }
                })
                .collect();
            let sliced = Tensor::cat(&sliced, 0).unwrap();
            let weights = Tensor::randn(0f32, 1.0, sliced.shape(), &device).unwrap();
            let loss = |t: &Tensor| (t * &weights).unwrap().sum_all().unwrap();
            let (a, b) = (loss(&stacked), loss(&sliced));
            let (ga, gb) = (a.backward().unwrap(), b.backward().unwrap());
            let max_diff = |x: &Tensor, y: &Tensor| {
                let d = (x - y).unwrap().abs().unwrap().max_all().unwrap();
                d.to_scalar::<f32>().unwrap()
            };
            assert!(max_diff(&stacked, &sliced) < 1e-5, "{name}: values");
            let mut checked = 0;
            let vars = store.vars();
            let inputs = [z.as_tensor(), h.as_tensor()];
            for var in vars.iter().map(|v| v.as_tensor()).chain(inputs) {
                let (x, y) = (ga.get(var), gb.get(var));
                assert_eq!(
                    x.is_some(),
                    y.is_some(),
                    "{name}: which tensors get gradients"
                );
                if let (Some(x), Some(y)) = (x, y) {
                    assert!(max_diff(x, y) < 1e-5, "{name}: gradient");
                    checked += 1;
                }
            }
            assert!(checked >= 4, "{name}: only {checked} gradients compared");
        }
    }
}
