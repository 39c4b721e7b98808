//! (placeholder: search report)
