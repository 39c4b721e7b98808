//! (placeholder: search sampler)
