//! (placeholder: predict)
