//! Tiny random BERT encoders built in code, for tests and examples that must not download weights.

use super::config::BertConfig;
use super::encoder::Encoder;
use super::BackboneError;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// A small config: 2 layers, hidden 48, 4 heads, FFN 96, vocabulary 64, 32 positions.
pub fn tiny_config() -> BertConfig {
    BertConfig {
        vocab_size: 64,
        hidden_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 96,
        hidden_act: "gelu".into(),
        max_position_embeddings: 32,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        model_type: Some("bert".into()),
    }
}

/// Random weights under HF names (N(0, 0.2²) matrices, LayerNorm γ=1, β=0), seeded.
pub fn tiny_weights(
    config: &BertConfig,
    seed: u64,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let shape = config.shape();
    let mut map = HashMap::new();
    for (name, count) in shape.tensor_inventory() {
        let values: Vec<f32> = if name.contains("LayerNorm.weight") {
            vec![1.0; count]
        } else if name.contains("LayerNorm.bias") {
            vec![0.0; count]
        } else {
            (0..count)
                .map(|_| rng.random_range(-0.35f32..0.35))
                .collect()
        };
        let dims = tensor_dims(&name, count, &shape);
        map.insert(name, Tensor::from_vec(values, dims, device)?);
    }
    Ok(map)
}

fn tensor_dims(name: &str, count: usize, s: &super::config::BackboneShape) -> Vec<usize> {
    if name.ends_with(".bias") || name.contains("LayerNorm") {
        return vec![count];
    }
    if name.contains("word_embeddings")
        || name.contains("position_embeddings")
        || name.contains("token_type")
    {
        return vec![count / s.hidden, s.hidden];
    }
    if name.contains("intermediate.dense") {
        return vec![s.ffn, s.hidden];
    }
    if name.ends_with("output.dense.weight") && !name.contains("attention") {
        return vec![s.hidden, s.ffn];
    }
    vec![s.hidden, s.hidden]
}

/// A tiny encoder with random, frozen weights.
pub fn tiny_encoder(seed: u64) -> Result<Encoder> {
    let config = tiny_config();
    let device = Device::Cpu;
    let weights = tiny_weights(&config, seed, &device)?;
    Encoder::load(
        VarBuilder::from_tensors(weights, DType::F32, &device),
        config,
    )
}

/// Writes a tiny HF-style model folder: config.json, model.safetensors, tokenizer.json.
pub fn write_tiny_model(
    dir: &std::path::Path,
    seed: u64,
) -> std::result::Result<(), BackboneError> {
    let failed = |message: String| BackboneError::Weights {
        path: dir.display().to_string(),
        message,
    };
    let config = tiny_config();
    std::fs::create_dir_all(dir).map_err(|e| failed(format!("creating the folder: {e}")))?;
    let json = serde_json::to_string_pretty(&config).unwrap_or_default();
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| failed(format!("writing {name}: {e}")))
    };
    write("config.json", json)?;
    let weights = tiny_weights(&config, seed, &Device::Cpu).map_err(|e| failed(e.to_string()))?;
    candle_core::safetensors::save(&weights, dir.join("model.safetensors"))
        .map_err(|e| failed(format!("writing model.safetensors: {e}")))?;
    write("tokenizer.json", tiny_tokenizer_json().to_string())
}

/// Words of the tiny tokenizer's vocabulary, after the four special tokens.
pub const TINY_WORDS: &[&str] = &[
    "the", "a", "film", "movie", "plot", "actors", "story", "was", "is", "great", "awful", "good",
    "bad", "fine", "dull", "and", "very", "quite", "not", "really", ".", ",", "!",
];

/// A BERT-style WordPiece `tokenizer.json` over `TINY_WORDS` (`[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3).
pub fn tiny_tokenizer_json() -> serde_json::Value {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let vocab: serde_json::Map<String, serde_json::Value> = specials
        .iter()
        .chain(TINY_WORDS)
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
}
