//! (placeholder: search store)
