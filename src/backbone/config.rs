//! BERT config.json
