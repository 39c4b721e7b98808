//! (placeholder: search space)
