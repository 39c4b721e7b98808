//! The classifier: frozen encoder + compiled design + classification head.
