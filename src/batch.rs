//! Tokenised splits and their batching: dynamic padding, optional length bucketing, seeded shuffling.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// One split after tokenisation: token ids per example (already truncated, with special tokens)
/// and the label index per example.
#[derive(Debug, Clone, Default)]
pub struct TokenizedSplit {
    pub ids: Vec<Vec<u32>>,
    pub labels: Vec<u32>,
}

impl TokenizedSplit {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The first `n` examples (a cheap fidelity for search).
    pub fn head(&self, n: usize) -> TokenizedSplit {
        let n = n.min(self.len());
        TokenizedSplit {
            ids: self.ids[..n].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// A padded batch on a device. `attention_mask` is 1.0 for real tokens and 0.0 for padding.
#[derive(Debug, Clone)]
pub struct Batch {
    /// (batch, seq) u32
    pub input_ids: Tensor,
    /// (batch, seq) f32
    pub attention_mask: Tensor,
    /// (batch,) u32
    pub labels: Tensor,
    pub size: usize,
    /// Hidden states computed once for these examples below the layers a design changes; the
    /// encoder then starts there instead of at the embeddings.
    pub frozen: Option<FrozenInput>,
}

/// What enters encoder layer `layer` for a batch: (batch, seq, hidden), zero at padding.
#[derive(Debug, Clone)]
pub struct FrozenInput {
    pub layer: usize,
    pub hidden: Tensor,
}

/// How examples are grouped into batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchPlan {
    pub batch_size: usize,
    /// `Some(seed)` shuffles (training); `None` keeps the split's order (evaluation).
    pub shuffle_seed: Option<u64>,
    /// Group examples of similar length so padding is small; batches are still visited in random order.
    pub bucket_by_length: bool,
}

/// Index lists of each batch, in the order they are visited.
pub fn plan_batches(split: &TokenizedSplit, plan: &BatchPlan) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..split.len()).collect();
    let mut rng = plan.shuffle_seed.map(rand::rngs::StdRng::seed_from_u64);
    if let Some(rng) = rng.as_mut() {
        order.shuffle(rng);
    }
    let batch_size = plan.batch_size.max(1);
    if plan.bucket_by_length {
        // Sort within windows of 50 batches: similar lengths share a batch, yet each epoch still
        // sees different neighbours (the shuffle above decides the windows).
        let window = batch_size * 50;
        for chunk in order.chunks_mut(window) {
            chunk.sort_by_key(|&i| split.ids[i].len());
        }
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(|c| c.to_vec()).collect();
    if let Some(rng) = rng.as_mut() {
        if plan.bucket_by_length {
            batches.shuffle(rng);
        }
    }
    batches
}

/// Builds one padded batch from example indices; pads with `pad_id` to the longest example.
pub fn make_batch(
    split: &TokenizedSplit,
    indices: &[usize],
    pad_id: u32,
    device: &Device,
) -> candle_core::Result<Batch> {
    let size = indices.len();
    let seq = indices
        .iter()
        .map(|&i| split.ids[i].len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = Vec::with_capacity(size * seq);
    let mut mask = Vec::with_capacity(size * seq);
    let mut labels = Vec::with_capacity(size);
    for &i in indices {
        let row = &split.ids[i];
        ids.extend_from_slice(row);
        ids.extend(std::iter::repeat_n(pad_id, seq - row.len()));
        mask.extend(std::iter::repeat_n(1f32, row.len()));
        mask.extend(std::iter::repeat_n(0f32, seq - row.len()));
        labels.push(split.labels[i]);
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (size, seq), device)?,
        attention_mask: Tensor::from_vec(mask, (size, seq), device)?,
        labels: Tensor::from_vec(labels, size, device)?,
        size,
        frozen: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split() -> TokenizedSplit {
        TokenizedSplit {
            ids: (0..10).map(|i| vec![1; i + 1]).collect(),
            labels: (0..10).map(|i| i % 2).collect(),
        }
    }

    #[test]
    fn plans_cover_every_example_once() {
        for bucket in [false, true] {
            let plan = BatchPlan {
                batch_size: 3,
                shuffle_seed: Some(7),
                bucket_by_length: bucket,
            };
            let mut seen: Vec<usize> = plan_batches(&split(), &plan).concat();
            seen.sort();
            assert_eq!(seen, (0..10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn batch_is_padded_to_longest() -> candle_core::Result<()> {
        let b = make_batch(&split(), &[0, 3], 0, &Device::Cpu)?;
        assert_eq!(b.input_ids.dims(), &[2, 4]);
        let mask: Vec<Vec<f32>> = b.attention_mask.to_vec2()?;
        assert_eq!(mask[0], vec![1., 0., 0., 0.]);
        assert_eq!(mask[1], vec![1., 1., 1., 1.]);
        Ok(())
    }
}
