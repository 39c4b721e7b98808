//! (placeholder: export)
