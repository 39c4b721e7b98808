//! Adapter modules, one file per functional form.
