//! The llama family of decoder language models (SmolLM2 ...), read from GGUF checkpoints.

pub mod tokenizer;
