//! Importing a BERT encoder exported to ONNX as an HF-style folder (`config.json`,
//! `model.safetensors`, tokenizer files), so it loads through the same `Encoder::from_folder`
//! path as every other model. Used for `minilm-l3`, whose registry package ships only an ONNX
//! file.
//!
//! The PyTorch exporter keeps biases and layer norms under their HF names (behind a prefix such
//! as `model.0.auto_model.`) but folds each linear weight into an unnamed, pre-transposed
//! initializer (`onnx::MatMul_470`, shape (in, out)). Those are named by following the graph:
//! the initializer feeds a MatMul whose output feeds an Add with a named bias, and
//! `….query.bias` names `….query.weight`. They are transposed to torch's (out, in).

use super::onnx::{parse_model, OnnxGraph, OnnxNode, OnnxTensor};
use super::{io_at, AssetError};
use crate::backbone::config::BertConfig;
use safetensors::tensor::{Dtype, TensorView};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OnnxError {
    #[error("{}: not a readable ONNX model (truncated or corrupt?): byte {offset}: {what}", path.display())]
    Malformed {
        path: PathBuf,
        offset: usize,
        what: String,
    },
    #[error("{}: tensor {name}: {what}", path.display())]
    BadTensor {
        path: PathBuf,
        name: String,
        what: String,
    },
    #[error("{}: missing tensor {name} (a BERT encoder with {layers} layers needs it)", path.display())]
    MissingTensor {
        path: PathBuf,
        name: String,
        layers: usize,
    },
    #[error("{}: cannot name initializer {name}: {why}", path.display())]
    Unnamed {
        path: PathBuf,
        name: String,
        why: String,
    },
    #[error("{}: {message}", path.display())]
    Output { path: PathBuf, message: String },
}

/// Tokenizer files the imported folder takes from the model it is `like` (`tokenizer.json` is required).
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// A tensor ready to write: torch's shape and little-endian float32 bytes.
struct Named<'a> {
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

/// Converts the ONNX file `onnx` into `out/{config.json, model.safetensors, tokenizer files}`.
/// `like` is a model folder with the same vocabulary and shapes except the layer count: its
/// `config.json` (with `num_hidden_layers` from the ONNX graph, `_name_or_path` set to `source`)
/// and tokenizer are reused, because an ONNX export carries neither.
pub(crate) fn import_bert(
    onnx: &Path,
    like: &Path,
    source: &str,
    out: &Path,
) -> Result<BertConfig, AssetError> {
    let bytes = fs::read(onnx).map_err(io_at(onnx))?;
    let graph = parse_model(&bytes).map_err(|e| OnnxError::Malformed {
        path: onnx.to_path_buf(),
        offset: e.offset,
        what: e.what,
    })?;
    let tensors = bert_tensors(&graph, onnx)?;
    let (json, config) = config_like(like, source, layer_count(&tensors), onnx)?;
    let (layers, mut views) = (config.num_hidden_layers, Vec::new());
    for (name, count) in config.shape().tensor_inventory() {
        let Some(t) = tensors.get(&name) else {
            let path = onnx.to_path_buf();
            return Err(OnnxError::MissingTensor { path, name, layers }.into());
        };
        if t.data.len() != count * 4 {
            let what = format!(
                "shape {:?}, but config.json of {} implies {count} elements",
                t.shape,
                like.display()
            );
            let path = onnx.to_path_buf();
            return Err(OnnxError::BadTensor { path, name, what }.into());
        }
        let view = TensorView::new(Dtype::F32, t.shape.clone(), &t.data);
        views.push((name, view.map_err(|e| output_error(out, e))?));
    }
    fs::create_dir_all(out).map_err(io_at(out))?;
    let weights = out.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &weights).map_err(|e| output_error(&weights, e))?;
    let config_path = out.join("config.json");
    let text = serde_json::to_string_pretty(&json).map_err(|e| output_error(&config_path, e))?;
    fs::write(&config_path, text + "\n").map_err(io_at(&config_path))?;
    for file in TOKENIZER_FILES {
        let from = like.join(file);
        if from.is_file() || *file == "tokenizer.json" {
            fs::copy(&from, out.join(file)).map_err(io_at(&from))?;
        }
    }
    Ok(config)
}

fn output_error(path: &Path, e: impl std::fmt::Display) -> AssetError {
    let path = path.to_path_buf();
    let message = format!("writing the imported model: {e}");
    OnnxError::Output { path, message }.into()
}

/// Every encoder tensor of the graph under its HF name, matmul weights transposed.
fn bert_tensors<'a>(
    graph: &'a OnnxGraph<'a>,
    path: &Path,
) -> Result<BTreeMap<String, Named<'a>>, OnnxError> {
    let by_name: HashMap<&str, &OnnxTensor> =
        graph.initializers.iter().map(|t| (t.name, t)).collect();
    let mut adds: HashMap<&str, Vec<&OnnxNode>> = HashMap::new();
    for node in graph.nodes.iter().filter(|n| n.op_type == "Add") {
        for input in &node.inputs {
            adds.entry(*input).or_default().push(node);
        }
    }
    let bad = |name: &str, what: String| OnnxError::BadTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
        what,
    };
    let mut out = BTreeMap::new();
    let mut insert =
        |hf: String, named: Named<'a>, onnx_name: &str| match out.insert(hf.clone(), named) {
            None => Ok(()),
            Some(_) => Err(bad(onnx_name, format!("a second tensor named {hf}"))),
        };
    let mut matmul_weights = Vec::new();
    for node in graph.nodes.iter().filter(|n| n.op_type == "MatMul") {
        // Attention's own MatMuls (scores, context) multiply two activations: no initializer.
        let Some(w) = node.inputs.iter().find_map(|i| by_name.get(i)) else {
            continue;
        };
        matmul_weights.push(w.name);
        let bias = node
            .outputs
            .first()
            .and_then(|o| adds.get(o))
            .into_iter()
            .flatten()
            .flat_map(|add| &add.inputs)
            .filter_map(|i| by_name.get(i))
            .find_map(|t| hf_name(t.name).filter(|n| n.ends_with(".bias")));
        let Some(bias) = bias else {
            return Err(OnnxError::Unnamed {
                path: path.to_path_buf(),
                name: w.name.to_string(),
                why: format!(
                    "MatMul node {:?} that reads it feeds no Add with a named bias",
                    node.name
                ),
            });
        };
        let hf = format!("{}weight", bias.trim_end_matches("bias"));
        let data = w.f32_le_bytes().map_err(|e| bad(w.name, e))?;
        let &[rows, cols] = &w.dims[..] else {
            return Err(bad(
                w.name,
                format!("a MatMul weight with dims {:?}", w.dims),
            ));
        };
        // Dims are checked against the data's length above, so they fit in usize.
        let (rows, cols) = (rows as usize, cols as usize);
        let shape = vec![cols, rows];
        let data = Cow::Owned(transpose(&data, rows, cols));
        insert(hf, Named { shape, data }, w.name)?;
    }
    for t in &graph.initializers {
        let Some(hf) = hf_name(t.name).filter(|_| !matmul_weights.contains(&t.name)) else {
            continue;
        };
        let data = t.f32_le_bytes().map_err(|e| bad(t.name, e))?;
        let shape = t.dims.iter().map(|d| *d as usize).collect();
        insert(hf.to_string(), Named { shape, data }, t.name)?;
    }
    Ok(out)
}

/// The HF name inside an exported name (`model.0.auto_model.encoder.layer.0.…` →
/// `encoder.layer.0.…`): from the first component that starts an encoder tensor name.
fn hf_name(name: &str) -> Option<&str> {
    let starts = |i: usize| i == 0 || name.as_bytes().get(i.wrapping_sub(1)) == Some(&b'.');
    ["embeddings.", "encoder.layer."]
        .iter()
        .filter_map(|root| name.match_indices(root).find(|(i, _)| starts(*i)))
        .map(|(i, _)| i)
        .min()
        .map(|i| &name[i..])
}

/// One more than the highest `encoder.layer.{i}` (gaps show up as missing tensors later).
fn layer_count(tensors: &BTreeMap<String, Named>) -> usize {
    tensors
        .keys()
        .filter_map(|n| {
            n.strip_prefix("encoder.layer.")?
                .split('.')
                .next()?
                .parse()
                .ok()
        })
        .map(|i: usize| i + 1)
        .max()
        .unwrap_or(0)
}

/// (rows, cols) row-major float32 bytes → (cols, rows).
fn transpose(data: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for (i, value) in data.chunks_exact(4).enumerate() {
        let (r, c) = (i / cols, i % cols);
        let at = (c * rows + r) * 4;
        out[at..at + 4].copy_from_slice(value);
    }
    out
}

/// `like`'s config.json with the imported layer count and source, as JSON and as parsed.
fn config_like(
    like: &Path,
    source: &str,
    layers: usize,
    onnx: &Path,
) -> Result<(serde_json::Value, BertConfig), AssetError> {
    if layers == 0 {
        let path = onnx.to_path_buf();
        let name = "encoder.layer.0.*".to_string();
        return Err(OnnxError::MissingTensor { path, name, layers }.into());
    }
    let path = like.join("config.json");
    let text = fs::read_to_string(&path).map_err(io_at(&path))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| output_error(&path, e))?;
    let Some(fields) = json.as_object_mut() else {
        return Err(output_error(&path, "config.json is not a JSON object"));
    };
    fields.insert("num_hidden_layers".into(), layers.into());
    fields.insert("_name_or_path".into(), source.into());
    let config = serde_json::from_value(json.clone()).map_err(|e| output_error(&path, e))?;
    Ok((json, config))
}

#[cfg(test)]
#[path = "onnx_import_tests.rs"]
mod tests;
