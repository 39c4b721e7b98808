//! Tests of the ONNX import: the tiny random encoder written the way the PyTorch exporter writes
//! BERT, imported back, must give the same tensors; broken graphs give errors naming the tensor.

use super::*;
use crate::assets::onnx::tests::{len_field, model, node, tensor};
use crate::assets::TestDir;
use crate::backbone::tiny::{tiny_config, tiny_weights, write_tiny_model};
use candle_core::{Device, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PREFIX: &str = "model.0.auto_model.";

/// The exporter's layout: biases, norms and embeddings named behind a prefix; each linear weight
/// an unnamed (in, out) initializer read by a MatMul whose output an Add with the bias reads.
/// `drop` leaves one named tensor out; `orphan` gives the first MatMul no Add.
fn export(
    weights: &HashMap<String, Tensor>,
    drop: &str,
    orphan: bool,
) -> candle_core::Result<Vec<u8>> {
    // Attention scores multiply two activations: a MatMul the import must pass over.
    let mut graph = len_field(1, &node("MatMul", &["q", "k"], &["scores"]));
    let mut k = 0;
    for (name, _) in tiny_config().shape().tensor_inventory() {
        let t = &weights[&name];
        let linear = t.rank() == 2 && !name.starts_with("embeddings.");
        let (onnx_name, t) = if linear {
            let bias = format!("{PREFIX}{}bias", name.trim_end_matches("weight"));
            let (w, mm) = (format!("onnx::MatMul_{k}"), format!("mm{k}"));
            graph.extend(len_field(1, &node("MatMul", &["h", &w], &[&mm])));
            let read = if orphan && k == 0 {
                "elsewhere"
            } else {
                mm.as_str()
            };
            graph.extend(len_field(
                1,
                &node("Add", &[&bias, read], &[&format!("y{k}")]),
            ));
            k += 1;
            (w, t.t()?.contiguous()?)
        } else if name == drop {
            continue;
        } else {
            (format!("{PREFIX}{name}"), t.clone())
        };
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        graph.extend(len_field(5, &tensor(&onnx_name, t.dims(), &values)));
    }
    Ok(model(&graph))
}

/// Writes the export and a `like` folder; returns (onnx path, like folder, output folder).
fn setup(
    dir: &TestDir,
    drop: &str,
    orphan: bool,
) -> Result<(PathBuf, PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let like = dir.0.join("like");
    write_tiny_model(&like, 3)?;
    let weights = tiny_weights(&tiny_config(), 3, &Device::Cpu)?;
    let onnx = dir.write("tiny.onnx", &export(&weights, drop, orphan)?);
    Ok((onnx, like, dir.0.join("out")))
}

#[test]
fn import_reproduces_every_tensor() -> TestResult {
    let dir = TestDir::new("onnx-import");
    let (onnx, like, out) = setup(&dir, "", false)?;
    let config = import_bert(&onnx, &like, "tiny-onnx", &out)?;
    assert_eq!(config, tiny_config());
    let original = tiny_weights(&tiny_config(), 3, &Device::Cpu)?;
    let imported = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu)?;
    assert_eq!(imported.len(), original.len());
    for (name, want) in &original {
        let got = &imported[name];
        assert_eq!(got.dims(), want.dims(), "{name}");
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "{name}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("config.json"))?)?;
    assert_eq!(json["_name_or_path"], "tiny-onnx");
    assert_eq!(
        fs::read(out.join("tokenizer.json"))?,
        fs::read(like.join("tokenizer.json"))?
    );
    // The folder loads through the same path as every model.
    let encoder = crate::backbone::encoder::Encoder::from_folder(&out, &Device::Cpu)?;
    assert_eq!(encoder.shape().layers, 2);
    Ok(())
}

#[test]
fn broken_graphs_name_the_tensor() -> TestResult {
    let dir = TestDir::new("onnx-import-errors");
    let err = |drop: &str, orphan: bool| -> Result<String, Box<dyn std::error::Error>> {
        let (onnx, like, out) = setup(&dir, drop, orphan)?;
        Ok(import_bert(&onnx, &like, "t", &out)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default())
    };
    let msg = err("encoder.layer.1.output.LayerNorm.bias", false)?;
    assert!(msg.ends_with("tiny.onnx: missing tensor encoder.layer.1.output.LayerNorm.bias (a BERT encoder with 2 layers needs it)"), "{msg}");
    let msg = err("", true)?;
    assert!(msg.ends_with("tiny.onnx: cannot name initializer onnx::MatMul_0: MatMul node \"MatMul_node\" that reads it feeds no Add with a named bias"), "{msg}");
    // A truncated file: an error naming the file and the byte, not a panic.
    let (onnx, like, out) = setup(&dir, "", false)?;
    let bytes = fs::read(&onnx)?;
    fs::write(&onnx, &bytes[..bytes.len() / 2])?;
    let msg = import_bert(&onnx, &like, "t", &out)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("tiny.onnx: not a readable ONNX model (truncated or corrupt?): byte ")
            && msg.contains("truncated"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn exported_names_map_to_hf_names() {
    let cases = [
        (
            "model.0.auto_model.embeddings.LayerNorm.bias",
            Some("embeddings.LayerNorm.bias"),
        ),
        (
            "bert.encoder.layer.2.output.dense.bias",
            Some("encoder.layer.2.output.dense.bias"),
        ),
        (
            "encoder.layer.0.attention.self.key.bias",
            Some("encoder.layer.0.attention.self.key.bias"),
        ),
        ("onnx::MatMul_470", None),
        ("xembeddings.weight", None),
    ];
    for (onnx, hf) in cases {
        assert_eq!(hf_name(onnx), hf, "{onnx}");
    }
}

#[test]
fn transpose_swaps_rows_and_columns() {
    let data: Vec<u8> = (0..6u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    let t: Vec<f32> = transpose(&data, 2, 3)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(t, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}
